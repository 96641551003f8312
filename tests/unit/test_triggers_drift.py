"""spec.retrain.onDrift without a cluster: which deployments report for a TrainingJob (by the
lineage in their status.drift), when their drift starts a run, the DriftMonitored condition
and the limits that hold a drift run back."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from mlcycle import triggers
from mlcycle.objects import Invalid, ModelDeployment, parse_model_deployment
from mlcycle.reconcile.trainingjob import held_back
from mlcycle_contract.api.trainingjob import RunTrigger
from tests.unit.test_triggers import AT, run, spec, status

UID = "tj-uid-1"


def deployment(name: str, uid: str | None, detected: bool, monitored: bool = True,
               detected_time: Any = AT) -> ModelDeployment:
    drift = {"version": 2, "rows": 300, "replicas": 2, "detected": detected,
             "detectedTime": detected_time.isoformat(), "checkedTime": AT.isoformat(),
             "features": [{"name": "x", "kind": "numeric", "score": 1.2, "missingShift": 0,
                           "drifted": detected},
                          {"name": "y", "kind": "numeric", "score": 0.01, "missingShift": 0,
                           "drifted": False}],
             **({"trainingJobUid": uid} if uid else {})}
    parsed = parse_model_deployment({
        "apiVersion": "mlcycle.dev/v1alpha1", "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": "ml", "uid": f"md-{name}", "generation": 1},
        "spec": {"model": {"name": "iris", "alias": "champion"},
                 "monitoring": {"drift": monitored}},
        "status": {"servedVersion": 2, "drift": drift}})
    assert not isinstance(parsed, Invalid)
    return parsed


def reports(*deployments: ModelDeployment) -> list[triggers.DriftReport]:
    """The reports the operator's index keeps under this TrainingJob's uid."""
    found = (triggers.drift_report(d) for d in deployments)
    return [r for r in found if r is not None and r.training_job_uid == UID]


def test_only_monitoring_deployments_of_its_own_versions_report() -> None:
    kept = reports(
        deployment("mine", UID, detected=True),
        deployment("calm", UID, detected=False),
        deployment("other", "tj-uid-2", detected=True),
        deployment("unmonitored", UID, detected=True, monitored=False),
    )
    assert [(r.deployment, r.detected_time) for r in kept] == [("mine", AT), ("calm", None)]
    assert kept[0].features == ["x"] and (kept[0].model, kept[0].version) == ("iris", 2)
    assert triggers.drift_report(deployment("untagged", None, detected=True)) is None


def test_a_detection_after_the_latest_run_started_fires_once_per_detection() -> None:
    on = spec(retrain={"onDrift": True})
    [report] = reports(deployment("iris", UID, detected=True))
    before = status(run(1, AT - timedelta(hours=1)))
    fired = triggers.due(on, before, None, AT + timedelta(seconds=10), [report])
    [trigger] = fired.triggers
    assert trigger.kind == RunTrigger.DRIFT and trigger.key == f"drift/iris/{AT.isoformat()}"
    assert "ModelDeployment iris reports drift of model iris version 2" in trigger.reason
    assert "(in x)" in trigger.reason
    after = status(run(2, AT + timedelta(seconds=5)), run(1, AT - timedelta(hours=1)))
    assert triggers.due(on, after, None, AT + timedelta(minutes=1), [report]).triggers == []
    off = spec()
    assert triggers.due(off, before, None, AT, [report]).triggers == []
    calm = reports(deployment("iris", UID, detected=False))
    assert triggers.due(on, before, None, AT, calm).triggers == []


def test_drift_monitored_names_the_field_and_the_deployments() -> None:
    on = spec(retrain={"onDrift": True}, registry={"modelName": "iris-rf"})
    watched = triggers.drift_monitored(
        on, reports(deployment("b", UID, False), deployment("a", UID, True)), 1)
    assert (watched.status.value, watched.reason) == ("True", "Monitored")
    assert "ModelDeployment a, b monitors" in watched.message
    alone = triggers.drift_monitored(on, [], 1)
    assert (alone.status.value, alone.reason) == ("False", "NotMonitored")
    assert alone.message.startswith("spec.retrain.onDrift: no ModelDeployment with "
                                    "spec.monitoring.drift serves a model version")
    assert "model iris-rf" in alone.message


def test_limits_hold_drift_back_with_one_event_until_they_allow() -> None:
    cooled = spec(retrain={"onDrift": True, "minInterval": "1h"})
    latest = status(run(1, AT - timedelta(minutes=10)))
    [report] = reports(deployment("iris", UID, detected=True))
    fired = triggers.due(cooled, latest, None, AT, [report]).triggers
    hold = triggers.hold(cooled, latest, AT)
    assert hold is not None and hold.reason == "Cooldown"
    first = held_back(latest, fired, hold, AT)
    assert [e.reason for e in first.events] == ["RetrainHeldBack"]
    assert "reports drift" in first.events[0].message and "minInterval 1h" in \
        first.events[0].message
    assert [h.trigger for h in first.status.held_back] == [RunTrigger.DRIFT]
    again = held_back(first.status, fired, hold, AT + timedelta(seconds=10))
    assert again.events == []
    assert triggers.hold(cooled, latest, AT + timedelta(hours=1)) is None
