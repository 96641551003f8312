"""Retraining triggers and limits, without a cluster: cron in a time zone (through cronsim),
new data, the cooldown, the daily limit, Forbid and Replace; how runs are recorded in
status.runs."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from mlcycle import tenancy, triggers
from mlcycle.builders.trainingjob import training_job_name
from mlcycle.objects import Invalid, TrainingJob, parse_training_job
from mlcycle.reconcile import trainingjob
from mlcycle.reconcile.trainingjob import (
    current_job_name,
    held_back,
    reconcile_training_job,
    replaced_job,
    replaced_run,
    replacement_events,
    reports_on,
    start_run,
    training_outcome,
)
from mlcycle.settings import Settings
from mlcycle.unsupported import training_job_unsupported
from mlcycle_contract import constants
from mlcycle_contract.api.dataset import DatasetPhase, DatasetStatus, DatasetVersionRecord
from mlcycle_contract.api.trainingjob import (
    RunPhase,
    RunRecord,
    RunTrigger,
    TrainingJobSpec,
    TrainingJobStatus,
)

SETTINGS = Settings(mlflow_tracking_uri="http://mlflow:5000", s3_endpoint="http://s3:9000")
BASE: dict[str, Any] = {"datasetRef": {"name": "iris"}, "algorithm": "random_forest_classifier"}
AT = datetime(2026, 12, 1, 10, 0, 30, tzinfo=UTC)
TRAINED = {
    "metrics": {"accuracy": 0.96}, "fitSeconds": 0.4,
    "model": {"name": "iris-rf", "version": 3, "uri": "models:/iris-rf/3"},
    "mlflow": {"runId": "r1", "experimentId": "7"},
    "runtime": {"python": "3.11.7", "sklearn": "1.9.1", "numpy": "2.4.6"},
    "gates": {"passed": False, "failed": ["accuracy 0.96 < 0.99"]},
    "datasetVersion": "v1",
}


def spec(**changes: Any) -> TrainingJobSpec:
    return TrainingJobSpec.model_validate({**BASE, **changes})


def run(number: int, start: datetime, phase: RunPhase = RunPhase.SUCCEEDED,
        version: str = "v1") -> RunRecord:
    return RunRecord(number=number, trigger=RunTrigger.CREATED, reason="created", phase=phase,
                     job_name=f"iris-train-{number}", generation=1, dataset_version=version,
                     start_time=start)


def status(*runs: RunRecord, **fields: Any) -> TrainingJobStatus:
    return TrainingJobStatus(runs=list(runs), **fields)


def training_job(spec_fields: dict[str, Any], status_: TrainingJobStatus | None = None,
                 generation: int = 1) -> TrainingJob:
    parsed = parse_training_job({
        "metadata": {"name": "iris", "namespace": "ml", "uid": "u1", "generation": generation},
        "spec": {**BASE, **spec_fields},
        "status": (status_ or TrainingJobStatus()).to_wire()})
    assert not isinstance(parsed, Invalid), parsed
    return parsed


# --- schedule -------------------------------------------------------------------------------


def test_a_schedule_fires_once_per_cron_time_in_its_time_zone() -> None:
    every_5 = spec(schedule="*/5 * * * *")
    assert triggers.latest_fire(every_5, AT - timedelta(minutes=1), AT) == AT.replace(second=0)
    assert triggers.latest_fire(every_5, AT.replace(second=0), AT) is None  # handled already
    # 03:00 in Berlin is 02:00 UTC in winter.
    berlin = spec(schedule="0 3 * * *", timeZone="Europe/Berlin")
    at = datetime(2026, 12, 1, 2, 0, 5, tzinfo=UTC)
    assert triggers.latest_fire(berlin, at - timedelta(hours=1), at) == at.replace(second=0)
    assert triggers.latest_fire(spec(schedule="0 3 * * *"), at - timedelta(hours=1), at) is None
    assert triggers.latest_fire(spec(schedule="@hourly"), AT - timedelta(hours=1), AT) == \
        AT.replace(minute=0, second=0)


def test_missed_fires_start_one_run_not_one_each() -> None:
    every_minute = spec(schedule="* * * * *")
    due = triggers.due(every_minute, status(last_schedule_time=AT - timedelta(hours=3)),
                       None, AT)
    assert [t.kind for t in due.triggers] == [RunTrigger.SCHEDULE]
    assert due.last_schedule_time == AT.replace(second=0)


def test_a_schedule_first_seen_counts_from_now() -> None:
    due = triggers.due(spec(schedule="* * * * *"), status(), None, AT)
    assert due.triggers == [] and due.last_schedule_time == AT


def test_each_fire_has_its_own_run_identity() -> None:
    every_minute = spec(schedule="* * * * *")
    first = triggers.due(every_minute, status(last_schedule_time=AT - timedelta(minutes=1)),
                         None, AT).triggers[0]
    later = triggers.due(every_minute, status(last_schedule_time=AT), None,
                         AT + timedelta(minutes=1)).triggers[0]
    assert first.key != later.key and first.key.startswith("schedule/")


@pytest.mark.parametrize(("changes", "field"), [
    ({"schedule": "61 * * * *"}, "spec.schedule"),
    ({"schedule": "0 3 30 2 *"}, "spec.schedule"),
    ({"schedule": "@daily", "timeZone": "Mars/Olympus_Mons"}, "spec.timeZone"),
    ({"schedule": "@daily", "timeZone": "../../etc/passwd"}, "spec.timeZone"),
])
def test_an_invalid_cron_or_time_zone_names_its_field(changes: dict[str, Any],
                                                      field: str) -> None:
    problem = triggers.schedule_problem(spec(**changes))
    assert problem is not None and problem.startswith(f"{field}: "), problem


def test_valid_schedules_have_no_problem() -> None:
    for schedule in ("0 3 * * *", "*/15 8-18 * * 1-5", "@daily", "@yearly"):
        assert triggers.schedule_problem(spec(schedule=schedule, timeZone="Asia/Tokyo")) is None


def test_a_time_zone_needs_a_schedule() -> None:
    with pytest.raises(ValidationError, match="timeZone applies to schedule"):
        spec(timeZone="UTC")


# --- new data ----------------------------------------------------------------------------


def test_new_data_fires_for_a_version_the_latest_run_did_not_train_on() -> None:
    on_new = spec(retrain={"onNewData": True})
    trained = status(run(1, AT - timedelta(hours=1)))
    assert triggers.due(on_new, trained, "v1", AT).triggers == []
    [trigger] = triggers.due(on_new, trained, "v2", AT).triggers
    assert (trigger.kind, trigger.key) == (RunTrigger.NEW_DATA, "data/v2")
    assert "new version v2" in trigger.reason and "trained on v1" in trigger.reason
    assert triggers.due(on_new, trained, None, AT).triggers == []  # the Dataset is not Ready
    pinned = spec(retrain={"onNewData": True}, datasetRef={"name": "iris", "version": "v1"})
    assert triggers.due(pinned, trained, "v2", AT).triggers == []
    assert triggers.due(spec(), trained, "v2", AT).triggers == []


# --- limits ------------------------------------------------------------------------------


def test_forbid_holds_back_while_a_run_runs() -> None:
    held = triggers.hold(spec(schedule="@daily"),
                         status(run(4, AT - timedelta(hours=5), RunPhase.RUNNING)), AT)
    assert held is not None and held.reason == "Running"
    assert "run 4 is still running" in held.message and "Forbid" in held.message


def test_replace_holds_nothing_back_for_a_running_run_but_keeps_the_other_limits() -> None:
    running = status(run(4, AT - timedelta(hours=5), RunPhase.RUNNING))
    assert triggers.hold(spec(schedule="@daily", concurrencyPolicy="Replace"), running,
                         AT) is None
    cooled = spec(concurrencyPolicy="Replace", retrain={"onNewData": True, "minInterval": "6h"})
    held = triggers.hold(cooled, running, AT)
    assert held is not None and held.reason == "Cooldown"


def test_the_cooldown_holds_back_until_min_interval_after_the_last_start() -> None:
    cooled = spec(retrain={"onNewData": True, "minInterval": "1h"})
    recent = status(run(2, AT - timedelta(minutes=20)))
    held = triggers.hold(cooled, recent, AT)
    assert held is not None and held.reason == "Cooldown"
    assert held.message.startswith("spec.retrain.minInterval 1h: run 2 started at ")
    assert (AT + timedelta(minutes=40)).isoformat() in held.message
    assert triggers.hold(cooled, recent, AT + timedelta(minutes=40)) is None


def test_the_daily_limit_counts_runs_started_in_the_last_24_hours() -> None:
    limited = spec(retrain={"onNewData": True, "maxRunsPerDay": 2})
    two = status(run(3, AT - timedelta(hours=1)), run(2, AT - timedelta(hours=20)),
                 run(1, AT - timedelta(hours=30)))
    held = triggers.hold(limited, two, AT)
    assert held is not None and held.reason == "DailyLimit"
    assert "spec.retrain.maxRunsPerDay 2: 2 runs" in held.message
    assert triggers.hold(limited, two, AT + timedelta(hours=4, seconds=1)) is None


def test_max_runs_per_day_is_bounded_by_the_runs_kept() -> None:
    with pytest.raises(ValidationError):
        spec(retrain={"maxRunsPerDay": 31})


def test_new_data_held_back_posts_one_event_and_waits_a_skipped_fire_posts_each() -> None:
    hold = triggers.Hold("Cooldown", "spec.retrain.minInterval 1h: ...")
    data = triggers.Trigger(RunTrigger.NEW_DATA, "data/v2", "Dataset iris has a new version v2")
    fire = triggers.Trigger(RunTrigger.SCHEDULE, "schedule/x", "spec.schedule fired")
    first = held_back(status(), [data, fire], hold, AT)
    assert [e.reason for e in first.events] == ["RetrainHeldBack", "RetrainHeldBack"]
    assert "held back" in first.events[0].message and "skipped" in first.events[1].message
    assert [h.trigger for h in first.status.held_back] == [RunTrigger.NEW_DATA]
    again = held_back(first.status, [data, fire], hold, AT + timedelta(seconds=10))
    assert [e.message for e in again.events] == [first.events[1].message]  # the fire only
    assert again.status.held_back == first.status.held_back


# --- runs --------------------------------------------------------------------------------


def job(name: str, conditions: list[dict[str, str]]) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {constants.LABEL_DATASET_VERSION: "v1"}},
            "status": {"conditions": conditions}}


def pod(message: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"}, "status": {
        "containerStatuses": [{"state": {"terminated": {"message": json.dumps(message)}}}]}}


def test_the_first_run_is_recorded_and_completed_with_its_outcome() -> None:
    created = training_job({})
    name = current_job_name(created)
    assert name == training_job_name(created.metadata)
    running = training_outcome(created, job(name, []), [], SETTINGS).status
    [record] = running.runs
    assert (record.number, record.trigger, record.phase) == (1, "Created", "Running")
    assert record.dataset_version == "v1" and record.job_name == name
    done = training_outcome(replace(created, status=running),
                            job(name, [{"type": "Complete", "status": "True"}]),
                            [pod(TRAINED)], SETTINGS).status
    [record] = done.runs
    assert record.phase == "Succeeded" and record.model_version == 3
    assert record.gates_passed is False and record.completion_time is not None


def test_a_spec_change_records_a_new_run_and_supersedes_a_running_one() -> None:
    first = training_job({})
    running = training_outcome(first, job(current_job_name(first), []), [], SETTINGS).status
    changed = training_job({}, running, generation=2)
    name = current_job_name(changed)
    assert name != running.runs[0].job_name
    again = training_outcome(changed, job(name, []), [], SETTINGS).status
    assert [(r.number, r.trigger, r.phase) for r in again.runs] == [
        (2, "SpecChanged", "Running"), (1, "Created", "Superseded")]


def test_an_automatic_run_is_the_current_run_until_the_generation_changes() -> None:
    auto_name = training_job_name(training_job({}).metadata, "data/v2")
    auto = run(2, AT, RunPhase.RUNNING, "v2").model_copy(update={
        "trigger": RunTrigger.NEW_DATA, "job_name": auto_name})
    started = training_job({"retrain": {"onNewData": True}},
                           status(auto, run(1, AT - timedelta(hours=1)), job_name=auto_name,
                                  phase="Running"))
    assert current_job_name(started) == auto_name and reports_on(started, auto_name)
    assert not reports_on(started, training_job_name(started.metadata))
    edited = training_job({"retrain": {"onNewData": True}}, started.status, generation=2)
    assert current_job_name(edited) == training_job_name(edited.metadata)


def test_triggers_and_replace_are_supported_on_a_single_run_and_on_a_search() -> None:
    assert training_job_unsupported(spec(schedule="@daily", concurrencyPolicy="Replace")) == []
    searched = TrainingJobSpec.model_validate({
        "datasetRef": {"name": "iris"}, "search": {"algorithms": ["svc"]},
        "schedule": "@daily", "retrain": {"onNewData": True, "onDrift": True}})
    assert training_job_unsupported(searched) == []


# --- concurrencyPolicy: Replace ----------------------------------------------------------


def test_replace_names_the_running_run_of_another_job_and_forbid_none() -> None:
    running = [run(2, AT, RunPhase.RUNNING), run(1, AT - timedelta(hours=1))]
    replace_ = spec(concurrencyPolicy="Replace")
    assert replaced_run(replace_, running, "iris-train-3") == running[0]
    assert replaced_run(replace_, running, "iris-train-2") is None  # its own Job
    assert replaced_run(spec(), running, "iris-train-3") is None  # Forbid
    assert replaced_run(replace_, running[1:], "iris-train-3") is None  # none running
    assert replaced_run(replace_, [], "iris-train-1") is None


def test_a_job_made_for_a_run_already_replaced_is_to_be_deleted() -> None:
    """A stale reconcile can create the replaced run's Job after the replacement."""
    runs = [run(3, AT, RunPhase.RUNNING), run(2, AT, RunPhase.REPLACED),
            run(1, AT, RunPhase.SUPERSEDED)]
    done = [{"type": "Complete", "status": "True"}]
    assert replaced_job(runs, job("iris-train-2", []))
    assert not replaced_job(runs, job("iris-train-2", done))  # ended already
    assert not replaced_job(runs, job("iris-train-3", []))  # the current run's
    assert not replaced_job(runs, job("iris-train-1", []))  # Forbid: left to finish
    deleting = job("iris-train-2", [])
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert not replaced_job(runs, deleting)


def requested(status_: TrainingJobStatus, policy: str) -> TrainingJob:
    """The TrainingJob once a user set the manual request annotation."""
    parsed = parse_training_job({
        "metadata": {"name": "iris", "namespace": "ml", "uid": "u1", "generation": 1,
                     "annotations": {constants.ANNOTATION_REQUESTED_AT: "2026-12-01T10:01"}},
        "spec": {**BASE, "concurrencyPolicy": policy}, "status": status_.to_wire()})
    assert not isinstance(parsed, Invalid), parsed
    return parsed


def test_a_manual_request_under_replace_records_the_running_run_replaced_with_an_event() -> None:
    first = training_job({"concurrencyPolicy": "Replace"})
    old_job = current_job_name(first)
    running = training_outcome(first, job(old_job, []), [], SETTINGS).status
    again = requested(running, "Replace")
    new_job = current_job_name(again)
    assert new_job != old_job and replaced_run(again.spec, running.runs, new_job) is not None
    replaced = training_outcome(again, job(new_job, []), [], SETTINGS)
    assert [(r.number, r.trigger, r.phase) for r in replaced.status.runs] == [
        (2, "Manual", "Running"), (1, "Created", "Replaced")]
    assert replaced.status.runs[1].completion_time == replaced.status.runs[0].start_time
    [event] = [e for e in replaced.events if e.reason == "RunReplaced"]
    assert event.message.startswith(f"run 1 (Job {old_job}) replaced by run 2 (Manual: ")
    # The replaced Job's late end reaches nothing: only the new run's Job reports.
    after = requested(replaced.status, "Replace")
    assert reports_on(after, new_job) and not reports_on(after, old_job)
    # Written once more (a retried reconcile, the new Job's next event): no second Event.
    assert not [e for e in training_outcome(after, job(new_job, []), [], SETTINGS).events
                if e.reason == "RunReplaced"]


def test_a_manual_request_under_forbid_supersedes_without_an_event() -> None:
    first = training_job({})
    running = training_outcome(first, job(current_job_name(first), []), [], SETTINGS).status
    again = requested(running, "Forbid")
    outcome = training_outcome(again, job(current_job_name(again), []), [], SETTINGS)
    assert [r.phase for r in outcome.status.runs] == ["Running", "Superseded"]
    assert outcome.status.runs[1].completion_time is None
    assert replacement_events(running.runs, outcome.status.runs) == []


Calls = list[tuple[str, str]]


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> Calls:
    """The Kubernetes, tenancy and registry calls of a reconcile, recorded in order; the
    Dataset iris is Ready at version v2, after v1."""
    calls: Calls = []
    history = [DatasetVersionRecord(version=v, snapshot_uri=f"s3://data/iris/{v}", rows=150,
                                    created_at=AT) for v in ("v2", "v1")]
    dataset = {"metadata": {"name": "iris", "namespace": "ml", "uid": "d1", "generation": 1},
               "spec": {"source": {"builtin": "iris"}, "target": "target"},
               "status": DatasetStatus(phase=DatasetPhase.READY, version="v2",
                                       snapshot_uri="s3://data/iris/v2",
                                       history=history).to_wire()}

    def ensure_job(namespace: str, manifest: dict[str, Any]) -> dict[str, Any]:
        calls.append(("create", manifest["metadata"]["name"]))
        return manifest

    monkeypatch.setattr(trainingjob.kube, "read_custom", lambda *_: dataset)
    monkeypatch.setattr(trainingjob.kube, "delete_job",
                        lambda namespace, name: calls.append(("delete", name)))
    monkeypatch.setattr(trainingjob.kube, "ensure_job", ensure_job)
    monkeypatch.setattr(trainingjob.kube, "ensure_job_with_pods",
                        lambda namespace, manifest: (ensure_job(namespace, manifest), []))
    monkeypatch.setattr(trainingjob.tenancy, "ensure_tenant",
                        lambda namespace, _: tenancy.Tenant(namespace, "s", "p"))
    monkeypatch.setattr(trainingjob.registry, "check_registrable", lambda *_: None)
    return calls


def test_a_trigger_under_replace_deletes_the_running_job_before_starting_its_run(
        cluster: Calls) -> None:
    old = run(1, AT - timedelta(minutes=3), RunPhase.RUNNING)
    current = status(old, job_name=old.job_name, phase="Running")
    started = training_job({"schedule": "*/5 * * * *", "concurrencyPolicy": "Replace"}, current)
    fire = triggers.Trigger(RunTrigger.SCHEDULE, "schedule/x", "spec.schedule fired")
    outcome = start_run(started, current, [fire], SETTINGS, AT)
    new_job = training_job_name(started.metadata, "schedule/x")
    assert cluster == [("delete", old.job_name), ("create", new_job)]
    assert [(r.number, r.phase, r.completion_time) for r in outcome.status.runs] == [
        (2, "Running", None), (1, "Replaced", AT)]
    assert [e.reason for e in outcome.events] == ["RetrainStarted", "RunReplaced"]
    assert outcome.events[1].message.startswith(
        f"run 1 (Job {old.job_name}) replaced by run 2 (Schedule: spec.schedule fired)")
    assert outcome.status.job_name == new_job


def test_a_manual_request_under_replace_deletes_the_running_job_first(cluster: Calls) -> None:
    first = training_job({"concurrencyPolicy": "Replace"})
    old_job = current_job_name(first)
    running = training_outcome(first, job(old_job, []), [], SETTINGS).status
    outcome = reconcile_training_job(requested(running, "Replace"), SETTINGS)
    assert outcome is not None
    assert [call[0] for call in cluster] == ["delete", "create"] and cluster[0][1] == old_job
    assert [(r.phase, r.dataset_version) for r in outcome.status.runs] == [
        ("Running", "v2"), ("Replaced", "v1")]  # the new run takes the current version
    assert "RunReplaced" in [e.reason for e in outcome.events]


def test_new_data_under_replace_replaces_the_run_on_the_old_version_and_trains_the_new(
        cluster: Calls) -> None:
    old = run(1, AT - timedelta(minutes=3), RunPhase.RUNNING, "v1")
    current = status(old, job_name=old.job_name, phase="Running", datasetVersion="v1")
    started = training_job({"retrain": {"onNewData": True}, "concurrencyPolicy": "Replace"},
                           current)
    [data] = triggers.due(started.spec, current, "v2", AT).triggers
    outcome = start_run(started, current, [data], SETTINGS, AT)
    assert cluster == [("delete", old.job_name),
                       ("create", training_job_name(started.metadata, "data/v2"))]
    assert [(r.phase, r.dataset_version) for r in outcome.status.runs] == [
        ("Running", "v2"), ("Replaced", "v1")]
    # Trained on v2, the next tick finds nothing new: no replacement loop.
    assert triggers.due(started.spec, outcome.status, "v2", AT).triggers == []


def test_a_manual_request_under_forbid_deletes_nothing(cluster: Calls) -> None:
    first = training_job({})
    running = training_outcome(first, job(current_job_name(first), []), [], SETTINGS).status
    outcome = reconcile_training_job(requested(running, "Forbid"), SETTINGS)
    assert outcome is not None and [call[0] for call in cluster] == ["create"]
