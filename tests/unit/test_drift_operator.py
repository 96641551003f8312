"""The operator's side of drift: serving Pods get the switch, replicas' counts are merged."""

from __future__ import annotations

import numpy as np
import pytest

from mlcycle.builders.modeldeployment import build_deployment
from mlcycle.drift import merge_replicas
from mlcycle.registry import ModelVersion
from mlcycle_contract import drift
from mlcycle_contract.api.modeldeployment import ModelDeploymentSpec
from mlcycle_contract.drift import (
    DriftCounts,
    DriftReference,
    DriftThresholds,
    DriftWindow,
    FeatureCounts,
    numeric_counts,
    numeric_reference,
)
from tests.unit.test_operator_serving import OWNER, RUNTIME, SETTINGS, with_spec

VALUES = np.random.default_rng(4).normal(size=3000)
REFERENCE = DriftReference(rows=3000, features=[numeric_reference("x", VALUES)])


def _window(version: str, values: np.ndarray, reference: DriftReference = REFERENCE) -> DriftWindow:
    counts = DriftCounts(
        rows=len(values),
        features={"x": FeatureCounts(counts=numeric_counts(values, reference.features[0].edges))},
    )
    thresholds = DriftThresholds()
    return DriftWindow(
        version=version,
        window_rows=500,
        window_seconds=3600,
        reference=reference,
        counts=counts,
        scores=drift.score(reference, counts, thresholds),
    )


def _env(spec: ModelDeploymentSpec) -> dict[str, str]:
    built = build_deployment(with_spec(spec), ModelVersion("iris-classifier", 1, RUNTIME), SETTINGS)
    return {
        e["name"]: e.get("value") for e in built["spec"]["template"]["spec"]["containers"][0]["env"]
    }


def test_serving_pods_count_inputs_only_when_monitoring_drift_is_on() -> None:
    off = ModelDeploymentSpec.model_validate(OWNER["spec"])
    on = ModelDeploymentSpec.model_validate({**OWNER["spec"], "monitoring": {"drift": True}})
    assert drift.DRIFT.name not in _env(off)  # an existing Deployment is not rolled
    assert _env(on)[drift.DRIFT.name] == "true"


def test_replicas_that_each_saw_too_few_rows_detect_drift_together() -> None:
    shifted = np.random.default_rng(5).normal(1.0, 1.0, size=300)
    a, b = _window("2", shifted[:150]), _window("2", shifted[150:])
    thresholds = DriftThresholds(min_rows=200)
    assert not a.scores.detected and not b.scores.detected  # each: 150 rows
    merged = merge_replicas([a, b, _window("1", VALUES[:50])], "2", thresholds)
    assert merged is not None and merged.replicas == 2
    assert merged.scores.rows == 300 and merged.scores.detected
    assert merge_replicas([a], "3", thresholds) is None


def test_replicas_with_different_references_are_not_added() -> None:
    other = DriftReference(rows=10, features=[numeric_reference("x", VALUES[:10])])
    with pytest.raises(ValueError, match="different drift references"):
        merge_replicas(
            [_window("2", VALUES[:10]), _window("2", VALUES[:10], other)], "2", DriftThresholds()
        )
