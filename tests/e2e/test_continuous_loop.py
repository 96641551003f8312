"""The continuous-training loop of `make demo-continuous`, end to end on the cluster: new
data, drift from live traffic, retraining by itself, a challenger that beats the champion
and rolls out under traffic with no failed request, a worse one that is not promoted, and a
cooldown that holds a third trigger back with an Event."""

from __future__ import annotations

import pytest

from localkube import demo_continuous
from localkube.stack import Stack

pytestmark = pytest.mark.e2e


def test_the_loop_retrains_on_drift_and_promotes_only_a_better_model(
    mlstack: Stack, ml_namespace: str
) -> None:
    outcome = demo_continuous.run(mlstack, ml_namespace, model_name=f"flowers-{ml_namespace}")
    assert outcome["retrained"] and outcome["promoted"], outcome
    assert outcome["failed_requests"] == 0, outcome
    assert not outcome["second_promoted"], outcome
    assert outcome["cooldown_held"], outcome
    # At least the window's minimum, at most what the operator's 5 s check lets pile up.
    assert 100 <= outcome["drift_detected_after_requests"] <= 500, outcome
