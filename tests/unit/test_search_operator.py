"""The operator's pure search layer: the worker Job, the study's identity across edits (and
the earlier study's Jobs a new one deletes), the status computed from the trials, the
TrainingJob that trains the best trial, and the runs triggers start on a search (a new study
each, within the limits and concurrencyPolicy of any TrainingJob)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from mlcycle.builders.search import (
    GRACE_SECONDS,
    best_trial_training,
    build_search_workers,
    search_workers_name,
    study_name,
)
from mlcycle.builders.trainingjob import ResolvedDataset, training_job_name
from mlcycle.objects import Invalid, TrainingJob, parse_training_job
from mlcycle.reconcile import search as searches
from mlcycle.reconcile.common import JobState
from mlcycle.reconcile.search import (
    check_search,
    earlier_study_jobs,
    reconcile_search,
    retrain_search,
    search_ended,
    search_outcome,
    triggered_run,
    workers_state,
)
from mlcycle.reconcile.trainingjob import NotRunnable
from mlcycle.settings import Settings
from mlcycle.studies import Trials
from mlcycle_contract import constants, environment
from mlcycle_contract.api.dataset import (
    DatasetPhase,
    DatasetStatus,
    DatasetVersionRecord,
    SplitSpec,
)
from mlcycle_contract.api.learning import Algorithm
from mlcycle_contract.api.search import TrialState, TrialSummary
from mlcycle_contract.api.trainingjob import (
    RunPhase,
    RunRecord,
    RunTrigger,
    TrainingJobPhase,
    TrainingJobStatus,
)

SETTINGS = Settings(mlflow_tracking_uri="http://mlflow:5000", s3_endpoint="http://s3:9000")
RESOLVED = ResolvedDataset("wine", "v1", "s3://data/wine/v1/data.parquet", "target",
                           SplitSpec(test_fraction=0.3, seed=7, stratify=False))
SEARCH = {"datasetRef": {"name": "wine"},
          "search": {"algorithms": ["logistic_regression", "knn_classifier"],
                     "maxTrials": 30, "parallelism": 3, "seed": 1}}


def training_job(spec: dict[str, Any], generation: int = 1,
                 status: dict[str, Any] | None = None, request: str = "") -> TrainingJob:
    annotations = {constants.ANNOTATION_REQUESTED_AT: request} if request else {}
    parsed = parse_training_job({
        "apiVersion": constants.API_GROUP_VERSION, "kind": "TrainingJob",
        "metadata": {"name": "wine", "namespace": "ml", "uid": "uid-1",
                     "generation": generation, "annotations": annotations},
        "spec": spec, "status": status or {}})
    assert not isinstance(parsed, Invalid), parsed.problem
    return parsed


def with_search(**changes: Any) -> dict[str, Any]:
    return {**SEARCH, "search": {**SEARCH["search"], **changes}}


def test_workers_are_one_indexed_job_of_parallelism_pods_owned_by_the_training_job() -> None:
    job = build_search_workers(training_job(SEARCH), RESOLVED, "study-x", None, SETTINGS)
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["parallelism"] == job["spec"]["completions"] == 3
    assert job["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert job["metadata"]["labels"][constants.LABEL_COMPONENT] == "search"
    pod = job["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == GRACE_SECONDS
    container = pod["containers"][0]
    assert container["args"] == [environment.COMMAND_SEARCH]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env[environment.SEARCH_STUDY.name] == "study-x"
    # Inside the namespace's own prefix of the data bucket, which its credentials reach.
    assert env[environment.SEARCH_STUDY_URI.name].startswith(
        "s3://mlcycle-data/datasets/ml/searches/wine-uid-1/study-x/")


def test_raising_the_budget_continues_the_study_and_a_new_space_starts_another() -> None:
    first = study_name(training_job(SEARCH), "v1")
    assert study_name(training_job(with_search(maxTrials=60, parallelism=5), 2), "v1") == first
    assert study_name(training_job(with_search(goal=0.99, timeout="10m"), 3), "v1") == first
    assert study_name(training_job(with_search(algorithms=["knn_classifier"])), "v1") != first
    assert study_name(training_job(with_search(sampler="random")), "v1") != first
    assert study_name(training_job(SEARCH), "v2") != first  # new data, new study


def workers(generation: int, spec: dict[str, Any] = SEARCH, uid: str = "uid-1",
            conditions: list[dict[str, str]] | None = None,
            deleting: bool = False) -> dict[str, Any]:
    """The worker Job of a generation, as the API returns it."""
    job = build_search_workers(training_job(spec, generation), RESOLVED, "study-x", None,
                               SETTINGS)
    job["metadata"]["ownerReferences"][0]["uid"] = uid
    if deleting:
        job["metadata"]["deletionTimestamp"] = "2026-12-01T10:00:00Z"
    return job | {"status": {"conditions": conditions or []}}


def test_a_new_study_deletes_the_earlier_studys_unfinished_jobs_only() -> None:
    new = with_search(algorithms=["knn_classifier"], maxTrials=4)
    current = workers(3, new)
    earlier = [workers(1), workers(2, with_search(maxTrials=60))]
    done = workers(4, with_search(parallelism=1),
                   conditions=[{"type": "Complete", "status": "True"}])
    others = [workers(5, uid="uid-0"), workers(6, deleting=True)]  # an earlier TrainingJob's
    names = earlier_study_jobs([current, *earlier, done, *others], "uid-1",
                               current["metadata"]["name"])
    assert names == sorted(job["metadata"]["name"] for job in earlier)


Calls = list[tuple[str, str]]


def record_calls(monkeypatch: pytest.MonkeyPatch, existing: list[dict[str, Any]],
                 versions: tuple[str, ...] = ("v1",), trials: Trials | None = None,
                 ended: dict[str, str] | None = None,
                 pods: dict[str, list[dict[str, Any]]] | None = None) -> Calls:
    """The Kubernetes calls of a reconcile, recorded in order: the Dataset wine is Ready at
    the first of `versions` (the newest first), `existing` are the Jobs listed, a Job named
    in `ended` has that condition once ensured, `pods` those of a Job; MLflow holds `trials`
    (none unless given)."""
    calls: Calls = []
    history = [DatasetVersionRecord(version=v, snapshot_uri=f"s3://data/wine/{v}", rows=178,
                                    created_at=datetime(2026, 12, 1, tzinfo=UTC))
               for v in versions]
    dataset = {"metadata": {"name": "wine", "namespace": "ml", "uid": "d1", "generation": 1},
               "spec": {"source": {"builtin": "wine"}, "target": "target"},
               "status": DatasetStatus(phase=DatasetPhase.READY, version=versions[0],
                                       snapshot_uri=history[0].snapshot_uri,
                                       history=history).to_wire()}

    def ensure_job(namespace: str, manifest: dict[str, Any]) -> dict[str, Any]:
        name = manifest["metadata"]["name"]
        calls.append(("create", name))
        condition = (ended or {}).get(name)
        return manifest | {"status": {"conditions": [
            {"type": condition, "status": "True"}] if condition else []}}

    monkeypatch.setattr(searches.kube, "read_custom", lambda *_: dataset)
    monkeypatch.setattr(searches.kube, "jobs", lambda *_: existing)
    monkeypatch.setattr(searches.kube, "delete_job",
                        lambda namespace, name: calls.append(("delete", name)))
    monkeypatch.setattr(searches.kube, "ensure_job_with_pods", lambda namespace, manifest: (
        ensure_job(namespace, manifest), (pods or {}).get(manifest["metadata"]["name"], [])))
    monkeypatch.setattr(searches.studies, "read_trials",
                        lambda *_: trials or Trials([], None, None, {}))
    return calls


def reconcile_with(monkeypatch: pytest.MonkeyPatch, searched: TrainingJob,
                   existing: list[dict[str, Any]],
                   changed_job: dict[str, Any] | None = None) -> tuple[Any, Calls]:
    """reconcile_search against recorded Kubernetes calls, MLflow holding no trial yet."""
    calls = record_calls(monkeypatch, existing)
    return reconcile_search(searched, SETTINGS, changed_job), calls


def test_a_changed_space_deletes_the_running_workers_before_starting_new_ones(
        monkeypatch: pytest.MonkeyPatch) -> None:
    earlier = workers(1)
    study = study_name(training_job(SEARCH), "v1")
    changed = training_job(with_search(algorithms=["knn_classifier"]), 2,
                           {"study": study, "phase": "Running"})
    outcome, calls = reconcile_with(monkeypatch, changed, [earlier])
    assert calls == [("delete", earlier["metadata"]["name"]),
                     ("create", search_workers_name(changed.metadata))]
    assert outcome is not None and outcome.status.study != study
    [event] = [e for e in outcome.events if e.reason == "EarlierStudyStopped"]
    assert study in event.message and earlier["metadata"]["name"] in event.message


def test_a_raised_budget_keeps_the_earlier_workers_of_the_same_study(
        monkeypatch: pytest.MonkeyPatch) -> None:
    study = study_name(training_job(SEARCH), "v1")
    raised = training_job(with_search(maxTrials=60), 2, {"study": study, "phase": "Running"})
    outcome, calls = reconcile_with(monkeypatch, raised, [workers(1)])
    assert calls == [("create", search_workers_name(raised.metadata))]
    assert outcome is not None and outcome.status.study == study
    assert "EarlierStudyStopped" not in [e.reason for e in outcome.events]


def trial(number: int, value: float | None, state: TrialState = TrialState.COMPLETE,
          algorithm: str = "knn_classifier") -> TrialSummary:
    return TrialSummary(number=number, algorithm=Algorithm(algorithm), value=value, state=state,
                        hyperparameters='{"n_neighbors": 5}')


RUNNING = JobState("wine-search", finished=False, succeeded=False, message=None)
DONE = JobState("wine-search", finished=True, succeeded=True, message=None)


def test_status_counts_trials_and_ranks_the_best_first() -> None:
    trials = [trial(0, 0.9), trial(1, 0.95), trial(2, None, TrialState.PRUNED),
              trial(3, None, TrialState.FAILED), trial(4, None, TrialState.RUNNING),
              trial(5, 0.95)]
    outcome = search_outcome(training_job(SEARCH), "study-x",
                             Trials(trials, "parent", "7", {3: "FitFailed: x"}), RUNNING)
    status = outcome.status
    assert status.progress is not None and status.progress.trials == "5/30"
    assert (status.progress.completed, status.progress.pruned, status.progress.failed,
            status.progress.running) == (3, 1, 1, 1)
    assert [t.number for t in status.leaderboard or []] == [1, 5, 0]
    assert status.best_trial is not None and status.best_trial.number == 1
    assert status.objective is not None and status.objective.value == 0.95
    assert status.mlflow is not None and status.mlflow.run_id == "parent"
    assert {e.reason for e in outcome.events} == {"Searching", "BestTrialImproved"}
    # The next read with the same best posts no Event again.
    again = search_outcome(training_job(SEARCH, status=status.to_wire()), "study-x",
                           Trials(trials, "parent", "7", {}), RUNNING)
    assert again.events == []


def test_a_minimized_objective_ranks_the_lowest_first() -> None:
    spec = {**SEARCH, "objective": {"metric": "log_loss"}}
    outcome = search_outcome(training_job(spec), "s", Trials(
        [trial(0, 0.4), trial(1, 0.2)], None, None, {}), RUNNING)
    assert [t.number for t in outcome.status.leaderboard or []] == [1, 0]


def test_workers_done_without_a_completed_trial_fail_naming_the_errors() -> None:
    outcome = search_outcome(training_job(SEARCH), "s", Trials(
        [trial(0, None, TrialState.FAILED)], None, None, {0: "FitFailed: bad"}), DONE)
    assert outcome.status.phase == "Failed"
    ready = outcome.status.conditions[0]
    assert ready.reason == "NoTrialCompleted" and "trial 0: FitFailed: bad" in ready.message


def test_the_best_trial_is_trained_as_a_plain_training_job() -> None:
    best = TrialSummary(number=4, algorithm=Algorithm.KNN_CLASSIFIER, value=0.97,
                        state=TrialState.COMPLETE,
                        hyperparameters=json.dumps({"n_neighbors": 7, "weights": "distance"}))
    final = best_trial_training(training_job(SEARCH), best)
    assert final.spec.search is None and final.spec.algorithm == Algorithm.KNN_CLASSIFIER
    assert final.spec.hyperparameters == {"n_neighbors": 7, "weights": "distance"}


@pytest.mark.parametrize(("changes", "reason", "field"), [
    ({"space": {"knn_classifier": {"k": {"type": "int", "low": 1, "high": 3}}}},
     "InvalidSearch", "spec.search.space.knn_classifier.k"),
])
def test_a_bad_search_is_refused_before_any_pod(changes: dict[str, Any], reason: str,
                                                field: str) -> None:
    with pytest.raises(NotRunnable) as refused:
        check_search(training_job(with_search(**changes)))
    assert refused.value.reason == reason and refused.value.message.startswith(field)


def worker_pod(name: str, created: str, exit_code: int, reason: str) -> dict[str, Any]:
    message = json.dumps({"error": {"reason": reason, "message": f"{reason}: why"}})
    return {"metadata": {"name": name, "creationTimestamp": created},
            "status": {"containerStatuses": [{"name": "trainer", "state": {"terminated": {
                "exitCode": exit_code, "message": message}}}]}}


def test_a_failed_search_is_told_by_the_worker_that_ended_it_not_those_stopped_after() -> None:
    failed = {"metadata": {"name": "wine-search"}, "status": {"conditions": [
        {"type": "Failed", "status": "True", "reason": "PodFailurePolicy"}]}}
    pods = [worker_pod("w-0", "2026-12-01T04:00:00Z", environment.EXIT_INVALID_INPUT,
                       "TrialsFailed"),
            worker_pod("w-1", "2026-12-01T04:00:01Z", 3, "Terminated")]
    assert workers_state(failed, pods).failure() == ("TrialsFailed", "TrialsFailed: why")


def test_a_worker_job_of_another_study_made_again_by_a_stale_tick_is_deleted_on_its_event(
        monkeypatch: pytest.MonkeyPatch) -> None:
    knn = with_search(algorithms=["knn_classifier"])
    study = study_name(training_job(knn, 2), "v1")
    # The new study already runs (recorded in the status): only the event finds the Job.
    changed = training_job(knn, 2, {"study": study, "phase": "Running"})
    recreated = workers(1)  # its study: study-x
    _, calls = reconcile_with(monkeypatch, changed, [], recreated)
    assert calls[0] == ("delete", recreated["metadata"]["name"])
    # The generation's own workers, and earlier workers of the current study, stay.
    current = workers(2, knn)
    _, calls = reconcile_with(monkeypatch, changed, [], current)
    assert "delete" not in [call for call, _ in calls]
    same_study = workers(1)
    env = same_study["spec"]["template"]["spec"]["containers"][0]["env"]
    for variable in env:
        if variable["name"] == environment.SEARCH_STUDY.name:
            variable["value"] = study
    _, calls = reconcile_with(monkeypatch, changed, [], same_study)
    assert "delete" not in [call for call, _ in calls]


# --- runs and the triggers that start them ---------------------------------------------


ON_NEW_DATA = {**with_search(maxTrials=4, parallelism=1), "retrain": {"onNewData": True}}
TRAINED = {
    "metrics": {"accuracy": 0.96}, "fitSeconds": 0.4,
    "model": {"name": "wine", "version": 2, "uri": "models:/wine/2"},
    "mlflow": {"runId": "r2", "experimentId": "7"},
    "runtime": {"python": "3.11.7", "sklearn": "1.9.1", "numpy": "2.4.6"},
    "gates": {"passed": True, "failed": []}, "datasetVersion": "v2",
}


def first_search(monkeypatch: pytest.MonkeyPatch, spec: dict[str, Any]) -> TrainingJobStatus:
    """The status once the first search's study started: its run recorded, Running."""
    record_calls(monkeypatch, [])
    outcome = reconcile_search(training_job(spec), SETTINGS)
    assert outcome is not None
    return outcome.status


def test_a_search_s_run_is_recorded_as_its_study_starts(monkeypatch: pytest.MonkeyPatch,
                                                       ) -> None:
    started = first_search(monkeypatch, ON_NEW_DATA)
    [run] = started.runs
    assert (run.number, run.trigger, run.phase, run.dataset_version) == (
        1, RunTrigger.CREATED, RunPhase.RUNNING, "v1")
    # Its Job is the one that will train its best trial; the workers run meanwhile.
    assert run.job_name == training_job_name(training_job(ON_NEW_DATA).metadata)
    assert started.job_name == search_workers_name(training_job(ON_NEW_DATA).metadata)
    again = reconcile_search(training_job(ON_NEW_DATA, status=started.to_wire()), SETTINGS)
    assert again is not None and again.status.runs == started.runs  # recorded once


def running_workers(spec: dict[str, Any]) -> dict[str, Any]:
    return workers(1, spec) | {"status": {}}


def test_new_data_on_a_search_under_replace_stops_the_running_study_and_starts_its_own(
        monkeypatch: pytest.MonkeyPatch) -> None:
    spec = {**ON_NEW_DATA, "concurrencyPolicy": "Replace"}
    started = first_search(monkeypatch, spec)
    earlier = running_workers(spec)
    calls = record_calls(monkeypatch, [earlier], versions=("v2", "v1"))
    searched = training_job(spec, status=started.to_wire())
    outcome = retrain_search(searched, SETTINGS)
    assert outcome is not None
    run_job = training_job_name(searched.metadata, "data/v2")
    workers_name = search_workers_name(searched.metadata, run_job)
    assert calls == [("delete", earlier["metadata"]["name"]), ("create", workers_name)]
    status = outcome.status
    assert [(r.number, r.trigger, r.phase, r.dataset_version) for r in status.runs] == [
        (2, RunTrigger.NEW_DATA, RunPhase.RUNNING, "v2"),
        (1, RunTrigger.CREATED, RunPhase.REPLACED, "v1")]
    assert status.runs[0].job_name == run_job and status.job_name == workers_name
    assert status.study == study_name(searched, "v2", run_job) != started.study
    assert (status.phase, status.dataset_version) == ("Running", "v2")
    reasons = [e.reason for e in outcome.events]
    assert reasons[:3] == ["RetrainStarted", "RunReplaced", "EarlierStudyStopped"], reasons
    assert "new version v2" in outcome.events[0].message
    # The next tick: trained on v2, nothing fires; the run goes on without a second start.
    assert retrain_search(training_job(spec, status=status.to_wire()), SETTINGS) is None


def test_new_data_on_a_running_search_under_forbid_is_held_back_with_an_event(
        monkeypatch: pytest.MonkeyPatch) -> None:
    started = first_search(monkeypatch, ON_NEW_DATA)
    calls = record_calls(monkeypatch, [running_workers(ON_NEW_DATA)], versions=("v2", "v1"))
    outcome = retrain_search(training_job(ON_NEW_DATA, status=started.to_wire()), SETTINGS)
    assert outcome is not None and calls == []
    [event] = outcome.events
    assert event.reason == "RetrainHeldBack" and "run 1 is still running" in event.message
    assert [h.trigger for h in outcome.status.held_back] == [RunTrigger.NEW_DATA]
    assert outcome.status.runs == started.runs


def test_a_triggered_run_trains_its_best_trial_in_its_own_job_and_records_the_outcome(
        monkeypatch: pytest.MonkeyPatch) -> None:
    started = first_search(monkeypatch, ON_NEW_DATA)
    done = started.model_copy(update={"runs": [started.runs[0].model_copy(update={
        "phase": RunPhase.SUCCEEDED, "model_version": 1, "gates_passed": True})],
        "phase": TrainingJobPhase.SUCCEEDED})
    record_calls(monkeypatch, [], versions=("v2", "v1"))
    searched = training_job(ON_NEW_DATA, status=done.to_wire())
    begun = retrain_search(searched, SETTINGS)
    assert begun is not None and begun.status.runs[0].trigger == RunTrigger.NEW_DATA
    run_job = training_job_name(searched.metadata, "data/v2")
    workers_name = search_workers_name(searched.metadata, run_job)
    message = json.dumps(TRAINED)
    final_pod = {"metadata": {"creationTimestamp": "2026-12-01T00:00:00Z"}, "status": {
        "containerStatuses": [{"state": {"terminated": {"message": message}}}]}}
    calls = record_calls(
        monkeypatch, [], versions=("v2", "v1"), trials=Trials([trial(0, 0.97)], "p", "7", {}),
        ended={workers_name: "Complete", run_job: "Complete"}, pods={run_job: [final_pod]})
    trained = reconcile_search(training_job(ON_NEW_DATA, status=begun.status.to_wire()),
                               SETTINGS)
    assert trained is not None
    assert calls == [("create", workers_name), ("create", run_job)]
    assert [(r.number, r.phase, r.model_version, r.gates_passed) for r in
            trained.status.runs] == [(2, RunPhase.SUCCEEDED, 2, True),
                                     (1, RunPhase.SUCCEEDED, 1, True)]
    assert trained.status.runs[0].completion_time is not None
    assert trained.status.model is not None and trained.status.model.version == 2


def test_a_search_that_fails_ends_its_run_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    started = first_search(monkeypatch, SEARCH)
    name = search_workers_name(training_job(SEARCH).metadata)
    record_calls(monkeypatch, [], trials=Trials([trial(0, None, TrialState.FAILED)], None, None,
                                                {0: "FitFailed: bad"}),
                 ended={name: "Failed"})
    failed = reconcile_search(training_job(SEARCH, status=started.to_wire()), SETTINGS)
    assert failed is not None and failed.status.phase == "Failed"
    [run] = failed.status.runs
    assert run.phase == RunPhase.FAILED and run.completion_time is not None


def record(number: int, trigger: RunTrigger, job_name: str,
           phase: RunPhase = RunPhase.SUCCEEDED) -> RunRecord:
    return RunRecord(number=number, trigger=trigger, reason="why", phase=phase,
                     job_name=job_name, generation=1,
                     start_time=datetime(2026, 12, 1, tzinfo=UTC))


def test_a_raised_budget_after_a_triggered_run_continues_its_study(
        monkeypatch: pytest.MonkeyPatch) -> None:
    created = record(1, RunTrigger.CREATED, "wine-train-1")
    scheduled = record(2, RunTrigger.SCHEDULE, "wine-train-2", RunPhase.RUNNING)
    assert triggered_run([scheduled, created]) == "wine-train-2"
    assert triggered_run([created]) == ""
    study = study_name(training_job(SEARCH), "v1", "wine-train-2")
    assert study not in (study_name(training_job(SEARCH), "v1"),
                         study_name(training_job(SEARCH), "v1", "wine-train-3"))
    running = TrainingJobStatus(runs=[scheduled, created], study=study, phase="Running",
                                dataset_version="v1")
    raised = training_job(with_search(maxTrials=60), 2, running.to_wire())
    outcome, calls = reconcile_with(monkeypatch, raised, [workers(1)])
    assert outcome is not None and outcome.status.study == study
    assert calls == [("create", search_workers_name(raised.metadata))]
    assert [(r.trigger, r.phase) for r in outcome.status.runs] == [
        (RunTrigger.SPEC_CHANGED, RunPhase.RUNNING), (RunTrigger.SCHEDULE, RunPhase.SUPERSEDED),
        (RunTrigger.CREATED, RunPhase.SUCCEEDED)]


def test_a_manual_request_on_a_finished_search_starts_a_new_study(
        monkeypatch: pytest.MonkeyPatch) -> None:
    started = first_search(monkeypatch, SEARCH)
    done = started.model_copy(update={"phase": TrainingJobPhase.SUCCEEDED, "runs": [
        started.runs[0].model_copy(update={"phase": RunPhase.SUCCEEDED})]})
    assert search_ended(training_job(SEARCH, status=done.to_wire()))
    requested = training_job(SEARCH, status=done.to_wire(), request="2026-12-01T09:00")
    assert not search_ended(requested)
    outcome, _ = reconcile_with(monkeypatch, requested, [])
    assert outcome is not None and outcome.status.study != started.study
    assert [(r.number, r.trigger) for r in outcome.status.runs] == [
        (2, RunTrigger.MANUAL), (1, RunTrigger.CREATED)]


def test_a_running_search_refused_ends_its_run_and_one_waiting_for_its_dataset_does_not(
        monkeypatch: pytest.MonkeyPatch) -> None:
    started = first_search(monkeypatch, SEARCH)
    record_calls(monkeypatch, [], versions=("v2",))  # v1, which the run pinned, is gone
    refused = reconcile_search(training_job(SEARCH, status=started.to_wire()), SETTINGS)
    assert refused is not None and refused.status.phase == "Failed"
    assert refused.status.conditions[0].reason == "DatasetVersionNotFound"
    [run] = refused.status.runs
    assert run.phase == RunPhase.FAILED and run.completion_time is not None
    monkeypatch.setattr(searches.kube, "read_custom", lambda *_: None)  # the Dataset deleted
    waiting = reconcile_search(training_job(SEARCH, status=started.to_wire()), SETTINGS)
    assert waiting is not None and waiting.status.phase == "Pending"
    assert [r.phase for r in waiting.status.runs] == [RunPhase.RUNNING]
