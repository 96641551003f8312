"""The operator's side of drift: serving Pods get the settings, replicas' counts are merged
and become status.drift, the Drifted condition and Events."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from mlcycle.builders.modeldeployment import build_deployment
from mlcycle.drift import ReplicaAnswer, drift_outcome, merge_replicas, without_drift
from mlcycle.objects import ModelDeployment
from mlcycle.reconcile.modeldeployment import ready_pod_addresses
from mlcycle.registry import ModelVersion
from mlcycle_contract import drift
from mlcycle_contract.api.common import find_condition
from mlcycle_contract.api.modeldeployment import ModelDeploymentSpec, ModelDeploymentStatus
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


def _window(version: str, values: np.ndarray, reference: DriftReference = REFERENCE,
            oldest: float | None = 30.0) -> DriftWindow:
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
        oldest_seconds=oldest,
    )


def _env(spec: ModelDeploymentSpec) -> dict[str, str]:
    built = build_deployment(with_spec(spec), ModelVersion("iris-classifier", 1, RUNTIME), SETTINGS)
    return {
        e["name"]: e.get("value") for e in built["spec"]["template"]["spec"]["containers"][0]["env"]
    }


def test_serving_pods_count_inputs_only_when_monitoring_drift_is_on() -> None:
    off = ModelDeploymentSpec.model_validate(OWNER["spec"])
    on = ModelDeploymentSpec.model_validate({**OWNER["spec"], "monitoring": {
        "drift": True, "minRows": 50, "windowRows": 100, "psiThreshold": 0.3,
        "jensenShannonThreshold": 0.25, "missingShiftThreshold": 0.05,
        "unseenShareThreshold": 0.5}})
    assert not any(name.startswith("MLCYCLE_DRIFT") for name in _env(off))  # no roll
    env = _env(on)
    assert env[drift.DRIFT.name] == "true"
    assert env[drift.DRIFT_MIN_ROWS.name] == "50" and env[drift.DRIFT_WINDOW_ROWS.name] == "100"
    assert env[drift.DRIFT_PSI.name] == "0.3" and env[drift.DRIFT_WINDOW_SECONDS.name] == "3600"
    assert env[drift.DRIFT_JENSEN_SHANNON.name] == "0.25"
    assert env[drift.DRIFT_MISSING_SHIFT.name] == "0.05"
    assert env[drift.DRIFT_UNSEEN_SHARE.name] == "0.5"


@pytest.mark.parametrize("field", ["jensenShannonThreshold", "missingShiftThreshold",
                                   "unseenShareThreshold"])
@pytest.mark.parametrize("value", [0, 1.5])
def test_share_thresholds_outside_0_to_1_are_refused(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        ModelDeploymentSpec.model_validate(
            {**OWNER["spec"], "monitoring": {"drift": True, field: value}})


def test_monitoring_drift_true_alone_keeps_its_defaults() -> None:
    monitoring = ModelDeploymentSpec.model_validate(
        {**OWNER["spec"], "monitoring": {"drift": True}}).monitoring
    assert (monitoring.psi_threshold, monitoring.min_rows) == (0.2, 200)
    assert monitoring.to_wire() == {"drift": True, "psiThreshold": 0.2,
                                    "jensenShannonThreshold": 0.1, "missingShiftThreshold": 0.1,
                                    "unseenShareThreshold": 0.1, "minRows": 200,
                                    "windowRows": 500, "windowSeconds": 3600,
                                    "checkIntervalSeconds": 15}


def test_replicas_that_each_saw_too_few_rows_detect_drift_together() -> None:
    shifted = np.random.default_rng(5).normal(1.0, 1.0, size=300)
    a, b = _window("2", shifted[:150]), _window("2", shifted[150:])
    thresholds = DriftThresholds(min_rows=200)
    assert not a.scores.detected and not b.scores.detected  # each: 150 rows
    merged = merge_replicas([a, b, _window("1", VALUES[:50])], "2", thresholds)
    assert merged is not None and merged.replicas == 2
    assert merged.scores.rows == 300 and merged.scores.detected
    assert merge_replicas([a], "3", thresholds) is None


def test_the_operator_scores_merged_replicas_with_every_threshold_of_the_spec() -> None:
    """A missing rate 0.15 above training's drifts at the default 0.1, not at 0.2."""
    counts = DriftCounts(rows=200, features={"x": FeatureCounts(
        counts=numeric_counts(VALUES[:170], REFERENCE.features[0].edges), missing=30)})
    window = _window("2", VALUES[:200]).model_copy(update={"counts": counts})

    def verdict(monitoring: dict[str, object]) -> str:
        deployment = replace(_serving(), spec=ModelDeploymentSpec.model_validate(
            {**OWNER["spec"], "monitoring": {"drift": True, "minRows": 100, **monitoring}}))
        outcome = drift_outcome(deployment, [ReplicaAnswer("a", window=window)], AT)
        assert outcome is not None
        return _drifted(outcome.status)[1]

    assert verdict({}) == "DriftDetected"
    assert verdict({"missingShiftThreshold": 0.2}) == "NoDrift"


def test_replicas_with_different_references_are_not_added() -> None:
    other = DriftReference(rows=10, features=[numeric_reference("x", VALUES[:10])])
    with pytest.raises(ValueError, match="different drift references"):
        merge_replicas(
            [_window("2", VALUES[:10]), _window("2", VALUES[:10], other)], "2", DriftThresholds()
        )


AT = datetime(2026, 12, 1, 4, 0, tzinfo=UTC)
MONITORED = with_spec(ModelDeploymentSpec.model_validate(
    {**OWNER["spec"], "monitoring": {"drift": True, "minRows": 100}}))


def _serving(version: int | None = 2, status: ModelDeploymentStatus | None = None,
             ) -> ModelDeployment:
    status = status or ModelDeploymentStatus()
    return replace(MONITORED, status=status.model_copy(update={"served_version": version}))


def _drifted(status: ModelDeploymentStatus) -> tuple[str, str, str]:
    found = find_condition(status.conditions, "Drifted")
    assert found is not None
    return found.status.value, found.reason, found.message


def test_in_distribution_traffic_is_no_drift_over_enough_rows() -> None:
    answers = [ReplicaAnswer("a", window=_window("2", VALUES[:80], oldest=40.0)),
               ReplicaAnswer("b", window=_window("2", VALUES[80:160], oldest=90.0))]
    outcome = drift_outcome(_serving(), answers, AT, training_job_uid="tj-1")
    assert outcome is not None and outcome.events == []
    status = outcome.status
    assert _drifted(status)[:2] == ("False", "NoDrift")
    assert status.drift is not None and status.drift.training_job_uid == "tj-1"
    assert status.drift is not None
    assert (status.drift.rows, status.drift.replicas, status.drift.detected) == (160, 2, False)
    assert status.drift.since == AT - timedelta(seconds=90)  # the oldest replica's window
    assert status.drift.checked_time == AT and status.drift.detected_time is None
    assert [f.name for f in status.drift.features] == ["x"]


def test_a_window_under_min_rows_never_detects() -> None:
    shifted = np.random.default_rng(6).normal(2.0, 1.0, size=60)
    outcome = drift_outcome(_serving(), [ReplicaAnswer("a", window=_window("2", shifted))], AT)
    assert outcome is not None and outcome.events == []
    state, reason, message = _drifted(outcome.status)
    assert (state, reason) == ("False", "WindowTooSmall")
    assert "spec.monitoring.minRows 100" in message


def test_drift_is_detected_once_with_an_event_naming_the_feature() -> None:
    shifted = np.random.default_rng(7).normal(1.0, 1.0, size=150)
    answers = [ReplicaAnswer("a", window=_window("2", shifted)),
               ReplicaAnswer("old", window=_window("1", VALUES[:500]))]  # mid-rollout
    first = drift_outcome(_serving(), answers, AT)
    assert first is not None
    state, reason, message = _drifted(first.status)
    assert (state, reason) == ("True", "DriftDetected")
    assert "model iris-classifier version 2: drift in x (PSI" in message
    assert [(e.type, e.reason) for e in first.events] == [("Warning", "DriftDetected")]
    assert first.status.drift is not None and first.status.drift.replicas == 1
    assert first.status.drift.detected_time == AT

    later = AT + timedelta(minutes=1)
    again = drift_outcome(_serving(status=first.status), answers, later)
    assert again is not None and again.events == []  # still drifted: no new Event
    assert again.status.drift is not None and again.status.drift.detected_time == AT

    calm = [ReplicaAnswer("a", window=_window("2", VALUES[:300]))]
    cleared = drift_outcome(_serving(status=again.status), calm, later)
    assert cleared is not None and _drifted(cleared.status)[:2] == ("False", "NoDrift")
    assert [e.reason for e in cleared.events] == ["DriftCleared"]
    assert cleared.status.drift is not None and cleared.status.drift.detected_time == AT


def test_a_new_version_starts_its_own_drift() -> None:
    shifted = np.random.default_rng(8).normal(1.0, 1.0, size=150)
    first = drift_outcome(_serving(), [ReplicaAnswer("a", window=_window("2", shifted))], AT)
    assert first is not None
    rolled = drift_outcome(_serving(3, first.status),
                           [ReplicaAnswer("b", window=_window("3", shifted))], AT)
    assert rolled is not None and [e.reason for e in rolled.events] == ["DriftDetected"]


def test_a_version_without_reference_is_served_unmonitored_with_a_condition() -> None:
    answers = [ReplicaAnswer("a", no_reference="NoReference: version 2 has no drift reference")]
    outcome = drift_outcome(_serving(), answers, AT)
    assert outcome is not None and outcome.status.drift is None
    state, reason, message = _drifted(outcome.status)
    assert (state, reason) == ("Unknown", "NoReference")
    assert message.startswith("spec.monitoring.drift: model iris-classifier version 2 has no")
    assert [(e.type, e.reason) for e in outcome.events] == [("Warning", "NoReference")]
    again = drift_outcome(_serving(status=outcome.status), answers, AT)
    assert again is not None and again.events == []  # said once


def test_unreadable_replicas_say_why_and_keep_the_last_drift() -> None:
    first = drift_outcome(_serving(), [ReplicaAnswer("a", window=_window("2", VALUES[:200]))],
                          AT)
    assert first is not None
    failed = drift_outcome(_serving(status=first.status),
                           [ReplicaAnswer("a", error="ConnectError: refused")], AT)
    assert failed is not None and failed.status.drift == first.status.drift
    state, reason, message = _drifted(failed.status)
    assert (state, reason) == ("Unknown", "DriftUnavailable") and "a: ConnectError" in message
    assert drift_outcome(_serving(), [], AT) is None  # no ready replica: nothing to say
    assert drift_outcome(_serving(None), [ReplicaAnswer("a", error="x")], AT) is None


def test_monitoring_off_drops_drift_from_the_status() -> None:
    shifted = np.random.default_rng(9).normal(1.0, 1.0, size=150)
    outcome = drift_outcome(_serving(), [ReplicaAnswer("a", window=_window("2", shifted))], AT)
    assert outcome is not None
    off = without_drift(outcome.status)
    assert off.drift is None and find_condition(off.conditions, "Drifted") is None


def test_only_ready_pods_with_an_address_are_read() -> None:
    def pod(name: str, ready: str, ip: str | None = "10.0.0.1", deleting: bool = False,
            ) -> dict[str, object]:
        metadata = {"name": name, **({"deletionTimestamp": "now"} if deleting else {})}
        return {"metadata": metadata, "status": {
            "podIP": ip, "conditions": [{"type": "Ready", "status": ready}]}}

    pods = [pod("a", "True"), pod("b", "False"), pod("c", "True", ip=None),
            pod("d", "True", deleting=True)]
    assert ready_pod_addresses(pods) == [("a", "10.0.0.1")]
