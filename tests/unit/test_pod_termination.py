"""A Job's end read from its Pod: the Pod whose workload exited 0 with its result ends the run
before the Job controller marks the Job Complete; a failed Pod, a result of another kind, a
Pod of another Job or of a search's workers change nothing; and the Job's own Complete event
later sends nothing new."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, cast

import kopf
import pytest
from kubernetes.client.exceptions import ApiException

from mlcycle import handlers
from mlcycle.builders.dataset import ingest_job_name
from mlcycle.builders.trainingjob import training_job_name
from mlcycle.objects import Dataset, Invalid, TrainingJob, parse_dataset, parse_training_job
from mlcycle.reconcile.common import Outcome, job_state
from mlcycle.reconcile.dataset import dataset_outcome, ingested_by, refresh_outcome
from mlcycle.reconcile.trainingjob import training_outcome
from mlcycle_contract import constants
from mlcycle_contract.api.trainingjob import TrainingJobStatus
from mlcycle_contract.results import IngestionResult, TrainingResult
from tests.unit.test_operator_builders import COMPLETE, INGESTED, SETTINGS, TRAINED

JOB_UID = "job-uid-1"
FAILURE = {"error": {"reason": "MlflowUnavailable", "message": "MLflow did not answer"}}
NO_INDEX = cast(kopf.Index[Any, Any], {})


def training_body(status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"apiVersion": constants.API_GROUP_VERSION, "kind": "TrainingJob",
            "metadata": {"name": "iris", "namespace": "ml", "uid": "tj-uid", "generation": 1,
                         "resourceVersion": "10"},
            "spec": {"datasetRef": {"name": "iris"}, "algorithm": "random_forest_classifier",
                     "registry": {"modelName": "iris-rf", "alias": "champion"}},
            "status": status or {}}


def parsed_training(body: dict[str, Any]) -> TrainingJob:
    parsed = parse_training_job(body)
    assert not isinstance(parsed, Invalid), parsed
    return parsed


TRAINING = parsed_training(training_body())
TRAIN_JOB = training_job_name(TRAINING.metadata)


def job(name: str, conditions: list[dict[str, str]] | None = None, owner: str = "TrainingJob",
        **spec: Any) -> dict[str, Any]:
    """A Job as the API holds it; without conditions, the Job controller has not yet seen
    its Pod end."""
    return {"metadata": {"name": name, "namespace": "ml", "uid": JOB_UID,
                         "labels": {constants.LABEL_DATASET_VERSION: "abc123"},
                         "ownerReferences": [{"kind": owner, "name": "iris",
                                              "controller": True}]},
            "spec": {"completions": 1, **spec},
            "status": {"conditions": conditions} if conditions else {"active": 1}}


def pod(result: dict[str, Any] | str, exit_code: int = 0, job_uid: str = JOB_UID,
        container: str = "main", component: str = constants.COMPONENT_TRAIN,
        ) -> dict[str, Any]:
    message = result if isinstance(result, str) else json.dumps(result)
    return {"metadata": {"name": f"{TRAIN_JOB}-abcde", "namespace": "ml",
                         "creationTimestamp": "2026-12-01T10:00:00Z",
                         "finalizers": [handlers.JOB_TRACKING],
                         "labels": {constants.LABEL_MANAGED_BY: constants.MANAGED_BY,
                                    constants.LABEL_COMPONENT: component},
                         "ownerReferences": [{"kind": "Job", "name": TRAIN_JOB,
                                              "uid": job_uid, "controller": True}]},
            "status": {"containerStatuses": [{"name": container, "state": {"terminated": {
                "exitCode": exit_code, "message": message}}}]}}


def comparable(outcome: Outcome[TrainingJobStatus]) -> dict[str, Any]:
    """The status and Events without their moments (each path stamps its own)."""
    wire = outcome.status.to_wire()
    return {
        "phase": wire["phase"], "model": wire.get("model"), "objective": wire.get("objective"),
        "conditions": [(c["type"], c["status"], c["reason"], c["message"])
                       for c in wire["conditions"]],
        "runs": [(r["phase"], r.get("modelVersion"), r.get("gatesPassed")) for r in wire["runs"]],
        "events": outcome.events,
    }


def test_a_pod_that_exited_0_with_its_result_ends_the_run_before_the_job_is_complete() -> None:
    early = training_outcome(TRAINING, job(TRAIN_JOB), [pod(TRAINED)], SETTINGS)
    assert early.status.phase == "Succeeded" and early.status.model is not None
    assert [(e.type, e.reason) for e in early.events] == [("Normal", "Succeeded")]
    completed = training_outcome(TRAINING, job(TRAIN_JOB, COMPLETE), [pod(TRAINED)], SETTINGS)
    assert comparable(early) == comparable(completed)


def test_an_ingestion_or_a_refresh_check_ends_with_its_pod_too() -> None:
    fresh = parse_dataset({"metadata": {"name": "iris", "namespace": "ml", "uid": "ds-uid",
                                        "generation": 1},
                           "spec": {"source": {"url": "http://data.example/iris.csv"},
                                    "target": "target", "refreshInterval": "1m"}})
    assert not isinstance(fresh, Invalid)
    dataset: Dataset = fresh
    name = ingest_job_name(dataset.metadata)
    ingested = dataset_outcome(dataset, job(name, owner="Dataset"), [pod(INGESTED)])
    assert ingested.status.phase == "Ready" and ingested.status.version == INGESTED["version"]
    assert [e.reason for e in ingested.events] == ["Ingested"]
    ready = replace(dataset, status=ingested.status)
    # Its Job's later events find it recorded (the TrainingJobs still waiting are woken).
    assert ingested_by(ready, name) and not ingested_by(dataset, name)
    assert not ingested_by(ready, "check")
    unchanged = {"unchanged": True, "evidence": 'ETag "e1" unchanged'}
    checked = refresh_outcome(ready, job("check", owner="Dataset"), [pod(unchanged)])
    assert checked is not None and [e.reason for e in checked.events] == ["SourceUnchanged"]
    assert refresh_outcome(ready, job("check", owner="Dataset"), [pod(FAILURE, 3)]) is None


@pytest.mark.parametrize("pods", [
    pytest.param([pod(FAILURE, exit_code=3)], id="failed: the Job may retry it"),
    pytest.param([pod(FAILURE, exit_code=0)], id="exit 0 with a failure"),
    pytest.param([pod("Killed", exit_code=0)], id="exit 0 with no result"),
    pytest.param([pod(INGESTED, exit_code=0)], id="exit 0 with another command's result"),
    pytest.param([pod(TRAINED, job_uid="earlier")], id="a Pod of an earlier Job of that name"),
    pytest.param([pod(TRAINED, container="sidecar")], id="not the workload container"),
    pytest.param([], id="no Pod yet"),
])
def test_any_other_pod_leaves_the_run_to_its_job(pods: list[dict[str, Any]]) -> None:
    running = training_outcome(TRAINING, job(TRAIN_JOB), pods, SETTINGS)
    assert running.status.phase == "Running"
    assert [e.reason for e in running.events] == ["Training"]


def test_a_job_of_several_completions_needs_more_than_one_pod() -> None:
    workers = job("iris-search-1", completions=2, completionMode="Indexed")
    assert not job_state(workers, [pod(TRAINED)], (TrainingResult,)).finished
    assert job_state(job("one"), [pod(TRAINED)], (TrainingResult,)).succeeded
    # Without the command's results, only the Job's conditions count (a search's workers).
    assert not job_state(job("one"), [pod(TRAINED)]).finished
    assert not job_state(job("one"), [pod(TRAINED)], (IngestionResult,)).finished


def test_only_a_succeeded_workload_of_an_ingestion_or_training_pod_is_handled() -> None:
    def handled(manifest: dict[str, Any]) -> bool:
        return handlers.workload_succeeded(body=kopf.Body(manifest))

    assert handled(pod(TRAINED))
    assert handled(pod(INGESTED, component=constants.COMPONENT_INGEST))
    assert not handled(pod(FAILURE, exit_code=1))
    assert not handled(pod(TRAINED, container="sidecar"))
    assert not handled(pod(TRAINED, component="search"))  # a worker's end is not its study's
    running = pod(TRAINED)
    running["status"]["containerStatuses"][0]["state"] = {"running": {}}
    assert not handled(running)
    counted = pod(TRAINED)  # the Job controller counted it: the Job's event reports it
    counted["metadata"]["finalizers"] = []
    assert not handled(counted)


class FakeApi:
    """The API as the handlers see it: the TrainingJob's status as last written, the Job,
    its Pods; what was written, posted, deleted and woken."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, the_job: dict[str, Any],
                 pods: list[dict[str, Any]], status: dict[str, Any] | None = None) -> None:
        self.body = training_body(status)
        self.job, self.pods = the_job, pods
        self.written: list[tuple[str | None, bool]] = []
        self.events: list[str] = []
        self.deleted: list[str] = []
        self.woken: list[str] = []
        monkeypatch.setattr(handlers.kube, "read_custom", lambda *_: self.body)
        monkeypatch.setattr(handlers.kube, "read_job", lambda *_: self.job)
        monkeypatch.setattr(handlers.kube, "job_pods", lambda *_: self.pods)
        monkeypatch.setattr(handlers.kube, "patch_status", self.patch_status)
        monkeypatch.setattr(handlers.kube, "post_event",
                            lambda _, type_, reason, message: self.events.append(reason))
        monkeypatch.setattr(handlers.kube, "delete_job",
                            lambda _, name: self.deleted.append(name))
        monkeypatch.setattr(handlers, "wake_model_deployment",
                            lambda namespace, name: self.woken.append(name))

    def patch_status(self, resource: Any, status: dict[str, Any],
                     if_unchanged: bool = False) -> None:
        if status == resource.status.to_wire():
            return  # kube.patch_status sends no equal status
        self.written.append((status.get("phase"), if_unchanged))
        self.body = {**self.body, "status": status}


FOLLOWING = cast(kopf.Index[Any, Any], {("iris-rf", "champion"): [("ml", "iris-md")]})


def running_status() -> dict[str, Any]:
    return training_outcome(TRAINING, job(TRAIN_JOB), [], SETTINGS).status.to_wire()


def test_the_pod_event_reports_the_end_and_the_jobs_complete_event_sends_nothing_new(
        monkeypatch: pytest.MonkeyPatch) -> None:
    api = FakeApi(monkeypatch, job(TRAIN_JOB), [pod(TRAINED)], running_status())
    handlers.pod_event(kopf.Body(pod(TRAINED)), "MODIFIED", NO_INDEX, FOLLOWING)
    assert api.written == [("Succeeded", True)]
    assert api.events == ["Succeeded"] and api.woken == ["iris-md"]
    api.job = job(TRAIN_JOB, COMPLETE)
    handlers.job_event(kopf.Body(api.job), NO_INDEX, FOLLOWING)
    handlers.pod_event(kopf.Body(pod(TRAINED)), "MODIFIED", NO_INDEX, FOLLOWING)  # finalizer
    assert api.written == [("Succeeded", True)]
    assert api.events == ["Succeeded"] and api.woken == ["iris-md"]


def test_a_pod_event_before_the_jobs_first_status_reports_the_end(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator restarted after creating the Job, before writing the run: the Pod's end
    is still read (the Job's conditions are not needed)."""
    fresh = {**job(TRAIN_JOB)}
    del fresh["status"]
    api = FakeApi(monkeypatch, fresh, [pod(TRAINED)])
    handlers.pod_event(kopf.Body(pod(TRAINED)), "ADDED", NO_INDEX, FOLLOWING)
    assert api.written == [("Succeeded", True)]
    assert TrainingJobStatus.model_validate(api.body["status"]).runs[0].phase == "Succeeded"


def test_a_failed_pod_or_one_of_a_job_being_deleted_changes_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    api = FakeApi(monkeypatch, job(TRAIN_JOB), [pod(FAILURE, exit_code=3)], running_status())
    handlers.pod_event(kopf.Body(pod(FAILURE, exit_code=3)), "MODIFIED", NO_INDEX, FOLLOWING)
    deleting = job(TRAIN_JOB)
    deleting["metadata"]["deletionTimestamp"] = "2026-12-01T10:01:00Z"
    api.job, api.pods = deleting, [pod(TRAINED)]
    handlers.pod_event(kopf.Body(pod(TRAINED)), "MODIFIED", NO_INDEX, FOLLOWING)
    handlers.pod_event(kopf.Body(pod(TRAINED)), "DELETED", NO_INDEX, FOLLOWING)
    assert api.written == [] and api.events == [] and api.woken == []


def test_a_replaced_runs_pod_does_nothing_but_delete_its_job_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Replace recorded the run Replaced and deleted its Job; a Pod event read before the
    deletion reached the Job finds it recorded Replaced."""
    status = running_status()
    replaced_run = {**status["runs"][0], "phase": "Replaced",
                    "completionTime": "2026-12-01T10:01:00Z"}
    newer = {**status["runs"][0], "number": 2, "trigger": "Manual", "jobName": "iris-train-2",
             "request": "now"}
    replaced = {**status, "jobName": "iris-train-2", "runs": [newer, replaced_run]}
    body = training_body(replaced)
    body["metadata"]["annotations"] = {constants.ANNOTATION_REQUESTED_AT: "now"}
    api = FakeApi(monkeypatch, job(TRAIN_JOB), [pod(TRAINED)])
    api.body = body
    handlers.pod_event(kopf.Body(pod(TRAINED)), "MODIFIED", NO_INDEX, FOLLOWING)
    assert api.written == [] and api.events == [] and api.woken == []
    assert api.deleted == [TRAIN_JOB]


def test_an_ingestions_second_report_finds_it_recorded_and_writes_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The Pod's and the Job's events report the same end at once: the second write is
    refused (the Dataset moved on), and read again the Dataset needs nothing more. The
    TrainingJobs the index still names as waiting are woken (each starts only if Pending):
    one may have read the Dataset just before its Ready was written by another path."""
    dataset_body = {"apiVersion": constants.API_GROUP_VERSION, "kind": "Dataset",
                    "metadata": {"name": "iris", "namespace": "ml", "uid": "ds-uid",
                                 "generation": 1, "resourceVersion": "5"},
                    "spec": {"source": {"builtin": "iris"}, "target": "target"}}
    parsed = parse_dataset(dataset_body)
    assert not isinstance(parsed, Invalid)
    name = ingest_job_name(parsed.metadata)
    recorded = dataset_outcome(parsed, job(name, owner="Dataset"), [pod(INGESTED)]).status
    reads = iter([dataset_body, {**dataset_body, "status": recorded.to_wire()}])
    written: list[bool] = []
    woken: list[str] = []

    def patch_status(resource: Any, status: dict[str, Any], if_unchanged: bool = False) -> None:
        written.append(if_unchanged)
        raise ApiException(status=409, reason="Conflict")

    monkeypatch.setattr(handlers.kube, "read_custom", lambda *_: next(reads))
    monkeypatch.setattr(handlers.kube, "job_pods", lambda *_: [pod(INGESTED)])
    monkeypatch.setattr(handlers.kube, "patch_status", patch_status)
    monkeypatch.setattr(handlers.kube, "post_event", lambda *_: None)
    monkeypatch.setattr(handlers, "wake_training_job", lambda _, name: woken.append(name))
    waiting = cast(kopf.Index[Any, Any], {("ml", "iris"): ["iris-rf"]})
    handlers.job_event(kopf.Body(job(name, COMPLETE, owner="Dataset")), waiting, NO_INDEX)
    assert written == [True] and woken == ["iris-rf"]
