"""The pure layer of the operator: Job builders, reading a finished Job, computing status."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlcycle.builders.common import child_name
from mlcycle.builders.dataset import build_ingest_job
from mlcycle.builders.trainingjob import ResolvedDataset, build_training_job
from mlcycle.reconcile.common import job_state
from mlcycle.reconcile.dataset import dataset_outcome
from mlcycle.reconcile.trainingjob import training_outcome
from mlcycle.settings import Settings
from mlcycle_contract import constants, environment
from mlcycle_contract.api.dataset import DatasetSpec, SplitSpec
from mlcycle_contract.api.trainingjob import TrainingJobSpec

SETTINGS = Settings(mlflow_tracking_uri="http://mlflow:5000", s3_endpoint="http://s3:9000")


def resource(kind: str, spec: dict[str, Any], generation: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": constants.API_GROUP_VERSION,
        "kind": kind,
        "metadata": {"name": "iris", "namespace": "ml", "uid": "uid-1", "generation": generation},
        "spec": spec,
    }


DATASET = resource("Dataset", {"source": {"builtin": "iris"}, "target": "target"})
TRAINING = resource("TrainingJob", {
    "datasetRef": {"name": "iris"}, "algorithm": "random_forest_classifier",
    "hyperparameters": {"n_estimators": 10}, "registry": {"modelName": "iris-rf"},
})
RESOLVED = ResolvedDataset("iris", "abc123", "s3://data/iris/abc123/data.parquet", "target",
                           SplitSpec(test_fraction=0.3, seed=7, stratify=False))


def env_of(job: dict[str, Any]) -> dict[str, Any]:
    container = job["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_child_names_are_deterministic_dns_labels() -> None:
    first = child_name("a" * 80, "train", "uid", 1, "")
    assert first == child_name("a" * 80, "train", "uid", 1, "")
    assert first != child_name("a" * 80, "train", "uid", 2, "")
    assert len(first) <= 63 and first.endswith(first[-6:]) and "--" not in first


def test_ingest_job_runs_the_trainer_with_the_spec_and_secret_references() -> None:
    job = build_ingest_job(DATASET, DatasetSpec.model_validate(DATASET["spec"]), SETTINGS)
    assert job["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert job["metadata"]["ownerReferences"][0]["controller"] is True
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == [environment.COMMAND_INGEST]
    env = env_of(job)
    assert json.loads(env[environment.DATASET_SPEC.name])["source"] == {"builtin": "iris"}
    assert env[environment.AWS_SECRET_ACCESS_KEY.name] == {
        "secretKeyRef": {"name": "mlcycle-s3", "key": "secretKey"}}
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_training_job_is_restricted_and_fails_fast_on_invalid_input() -> None:
    spec = TrainingJobSpec.model_validate(TRAINING["spec"])
    job = build_training_job(TRAINING, spec, RESOLVED, SETTINGS)
    pod = job["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = pod["containers"][0]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]}}
    assert container["resources"]["requests"] and container["resources"]["limits"]
    rule = job["spec"]["podFailurePolicy"]["rules"][0]
    assert rule["action"] == "FailJob"
    assert rule["onExitCodes"]["values"] == [environment.EXIT_INVALID_INPUT]
    env = env_of(job)
    assert env[environment.DATASET_VERSION.name] == "abc123"
    assert env[environment.DATASET_URI.name] == RESOLVED.snapshot_uri
    assert job["metadata"]["labels"][constants.LABEL_DATASET_VERSION] == "abc123"
    sent = json.loads(env[environment.TRAINING_SPEC.name])
    assert "holdoutFraction" not in sent["validation"]  # the trainer falls back to the split
    split = json.loads(env[environment.DATASET_SPLIT.name])
    assert split == {"testFraction": 0.3, "seed": 7, "stratify": False}


def test_no_credential_value_appears_in_any_job() -> None:
    spec = TrainingJobSpec.model_validate(TRAINING["spec"])
    text = json.dumps(build_training_job(TRAINING, spec, RESOLVED, SETTINGS))
    assert "secretKeyRef" in text
    assert '"AWS_SECRET_ACCESS_KEY", "value"' not in text


def job(conditions: list[dict[str, str]], name: str = "iris-train-x") -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {constants.LABEL_DATASET_VERSION: "abc123"}},
            "status": {"conditions": conditions}}


def pod_with_message(message: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"}, "status": {
        "containerStatuses": [{"state": {"terminated": {"message": json.dumps(message)}}}]}}


def test_job_state_reads_the_trainers_error_from_the_termination_message() -> None:
    failed = job([{"type": "Failed", "status": "True", "reason": "PodFailurePolicy",
                   "message": "container main exited with 2"}])
    state = job_state(failed, [pod_with_message(
        {"error": {"reason": "TargetColumnMissing", "message": "spec.target: no column 'x'"}})])
    assert state.finished and not state.succeeded
    assert (state.failure_reason, state.failure_message) == (
        "TargetColumnMissing", "spec.target: no column 'x'")
    assert not job_state(job([]), []).finished


def test_dataset_status_after_ingestion() -> None:
    result = {"version": "abc123", "snapshotURI": "s3://d/abc123", "rows": 150, "columns": 5,
              "schema": [{"name": "target", "dtype": "int64"}],
              "profile": {"topFeatures": [{"name": "petal length (cm)", "importance": 0.9}],
                          "warnings": []}}
    outcome = dataset_outcome(DATASET, job([{"type": "Complete", "status": "True"}]),
                              [pod_with_message(result)])
    status = outcome.status
    assert status["phase"] == "Ready" and status["version"] == "abc123"
    assert status["history"][0]["version"] == "abc123"
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True" and ready["observedGeneration"] == 1
    assert [e.reason for e in outcome.events] == ["Ingested"]
    again = dataset_outcome({**DATASET, "status": status},
                            job([{"type": "Complete", "status": "True"}]),
                            [pod_with_message(result)])
    assert again.events == [] and len(again.status["history"]) == 1


@pytest.mark.parametrize("passed", [True, False])
def test_training_status_after_success(passed: bool) -> None:
    result = {
        "metrics": {"accuracy": 0.96, "f1_macro": 0.95},
        "model": {"name": "iris-rf", "version": 1, "uri": "models:/iris-rf/1"},
        "mlflow": {"runId": "r1", "experimentId": "7"},
        "gates": {"passed": passed, "failed": [] if passed else ["accuracy >= 0.99 (0.96)"]},
    }
    outcome = training_outcome(TRAINING, job([{"type": "Complete", "status": "True"}]),
                               [pod_with_message(result)], SETTINGS)
    status = outcome.status
    assert status["phase"] == "Succeeded"
    assert status["objective"] == {"metric": "accuracy", "value": 0.96}
    assert status["model"]["version"] == 1
    assert status["mlflow"]["runURL"] == "http://mlflow:5000/#/experiments/7/runs/r1"
    assert status["datasetVersion"] == "abc123"
    validated = next(c for c in status["conditions"] if c["type"] == "Validated")
    assert validated["status"] == ("True" if passed else "False")
