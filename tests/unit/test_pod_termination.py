"""A Job's end read from its Pod: the Pod whose workload exited 0 with its result ends the run
before the Job controller marks the Job Complete; a failed Pod, a result of another kind, a
Pod of another Job or of a search's workers change nothing."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from mlcycle.builders.dataset import ingest_job_name
from mlcycle.builders.trainingjob import training_job_name
from mlcycle.objects import Dataset, Invalid, TrainingJob, parse_dataset, parse_training_job
from mlcycle.reconcile.common import Outcome, job_state
from mlcycle.reconcile.dataset import dataset_outcome, refresh_outcome
from mlcycle.reconcile.trainingjob import training_outcome
from mlcycle.settings import Settings
from mlcycle_contract import constants
from mlcycle_contract.api.trainingjob import TrainingJobStatus
from mlcycle_contract.results import IngestionResult, TrainingResult

SETTINGS = Settings(mlflow_tracking_uri="http://mlflow:5000", s3_endpoint="http://s3:9000")
JOB_UID = "job-uid-1"
TRAINED = {
    "metrics": {"accuracy": 0.96}, "fitSeconds": 0.4,
    "model": {"name": "iris-rf", "version": 1, "uri": "models:/iris-rf/1"},
    "mlflow": {"runId": "r1", "experimentId": "7"},
    "runtime": {"python": "3.11.7", "sklearn": "1.9.1", "numpy": "2.4.6"},
    "gates": {"passed": True, "failed": []},
    "datasetVersion": "abc123",
    "objective": {"metric": "accuracy", "value": 0.96},
    "alias": {"name": "champion", "moved": True},
}
INGESTED = {"version": "v1", "snapshotURI": "s3://d/v1", "rows": 150, "columns": 5,
            "schema": [{"name": "target", "dtype": "int64"}]}
FAILURE = {"error": {"reason": "MlflowUnavailable", "message": "MLflow did not answer"}}
COMPLETE = [{"type": "Complete", "status": "True"}]


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
    assert ingested.status.phase == "Ready" and ingested.status.version == "v1"
    assert [e.reason for e in ingested.events] == ["Ingested"]
    ready = replace(dataset, status=ingested.status)
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
