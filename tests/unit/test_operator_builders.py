"""The pure layer of the operator: Job builders, reading a finished Job, computing status."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from mlcycle.builders.common import child_name
from mlcycle.builders.dataset import build_ingest_job
from mlcycle.builders.trainingjob import ResolvedDataset, build_training_job
from mlcycle.objects import Dataset, Invalid, TrainingJob, parse_dataset, parse_training_job
from mlcycle.reconcile.common import job_state
from mlcycle.reconcile.dataset import dataset_outcome
from mlcycle.reconcile.trainingjob import training_outcome
from mlcycle.settings import Settings
from mlcycle_contract import constants, environment
from mlcycle_contract.api.dataset import SplitSpec

SETTINGS = Settings(mlflow_tracking_uri="http://mlflow:5000", s3_endpoint="http://s3:9000")


def resource(kind: str, spec: dict[str, Any], generation: int = 1) -> dict[str, Any]:
    return {
        "apiVersion": constants.API_GROUP_VERSION,
        "kind": kind,
        "metadata": {"name": "iris", "namespace": "ml", "uid": "uid-1", "generation": generation},
        "spec": spec,
    }


def valid(parsed: Any) -> Any:
    assert not isinstance(parsed, Invalid), parsed
    return parsed


DATASET_BODY = resource("Dataset", {"source": {"builtin": "iris"}, "target": "target"})
TRAINING_BODY = resource("TrainingJob", {
    "datasetRef": {"name": "iris"}, "algorithm": "random_forest_classifier",
    "hyperparameters": {"n_estimators": 10}, "registry": {"modelName": "iris-rf"},
})
DATASET: Dataset = valid(parse_dataset(DATASET_BODY))
TRAINING: TrainingJob = valid(parse_training_job(TRAINING_BODY))
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
    job = build_ingest_job(DATASET, SETTINGS)
    assert job["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert job["metadata"]["ownerReferences"][0]["controller"] is True
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == [environment.COMMAND_INGEST]
    env = env_of(job)
    assert json.loads(env[environment.DATASET_SPEC.name])["source"] == {"builtin": "iris"}
    assert {name: env[name] for name in (
        environment.AWS_ACCESS_KEY_ID.name, environment.AWS_SECRET_ACCESS_KEY.name,
        environment.MLFLOW_TRACKING_USERNAME.name, environment.MLFLOW_TRACKING_PASSWORD.name,
    )} == {name: {"secretKeyRef": {"name": "mlcycle-tenant", "key": key}} for name, key in (
        (environment.AWS_ACCESS_KEY_ID.name, "accessKey"),
        (environment.AWS_SECRET_ACCESS_KEY.name, "secretKey"),
        (environment.MLFLOW_TRACKING_USERNAME.name, "mlflowUsername"),
        (environment.MLFLOW_TRACKING_PASSWORD.name, "mlflowPassword"))}
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_ingest_job_gets_the_source_address_policy_with_the_apiserver_denied() -> None:
    settings = Settings.from_env({"MLCYCLE_SOURCE_ALLOW_CIDRS": "10.96.7.0/24",
                                  "KUBERNETES_SERVICE_HOST": "10.96.0.1"})
    env = env_of(build_ingest_job(DATASET, settings))
    assert env[environment.SOURCE_DENY_CIDRS.name] == "10.96.0.0/12,10.96.0.1"
    assert env[environment.SOURCE_ALLOW_CIDRS.name] == "10.96.7.0/24"
    assert env_of(build_ingest_job(DATASET, SETTINGS))[environment.SOURCE_ALLOW_CIDRS.name] == ""


def test_a_malformed_source_network_stops_the_operator_at_start() -> None:
    with pytest.raises(ValueError, match="has host bits set"):
        Settings.from_env({"MLCYCLE_SOURCE_DENY_CIDRS": "10.96.0.1/12"})


def test_training_job_is_restricted_and_fails_fast_on_invalid_input() -> None:
    job = build_training_job(TRAINING, RESOLVED, SETTINGS)
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
    text = json.dumps(build_training_job(TRAINING, RESOLVED, SETTINGS))
    assert "secretKeyRef" in text
    assert '"AWS_SECRET_ACCESS_KEY", "value"' not in text


def job(conditions: list[dict[str, str]], name: str = "iris-train-x") -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {constants.LABEL_DATASET_VERSION: "abc123"}},
            "status": {"conditions": conditions}}


def pod_with_message(message: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"}, "status": {
        "containerStatuses": [{"state": {"terminated": {"message": json.dumps(message)}}}]}}


def test_a_failed_job_reports_the_trainers_reason_else_the_jobs_own() -> None:
    failed = job([{"type": "Failed", "status": "True", "reason": "PodFailurePolicy",
                   "message": "container main exited with 2"}])
    state = job_state(failed, [pod_with_message(
        {"error": {"reason": "TargetColumnMissing", "message": "spec.target: no column 'x'"}})])
    assert state.finished and not state.succeeded
    assert state.failure() == ("TargetColumnMissing", "spec.target: no column 'x'")
    killed = job([{"type": "Failed", "status": "True", "reason": "DeadlineExceeded",
                   "message": "Job was active longer than specified deadline"}])
    assert job_state(killed, []).failure() == (
        "DeadlineExceeded", "Job was active longer than specified deadline")
    assert not job_state(job([]), []).finished


def test_a_job_whose_pod_was_oom_killed_reports_oomkilled_with_the_memory_limit() -> None:
    failed = job([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                   "message": "Job has reached the specified backoff limit"}])
    pod = {"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"},
           "spec": {"containers": [{"name": "main", "resources": {"limits": {"memory": "64Mi"}}}]},
           "status": {"containerStatuses": [{"name": "main", "state": {"terminated": {
               "reason": "OOMKilled", "exitCode": 137, "message": "last log lines"}}}]}}
    reason, message = job_state(failed, [pod]).failure()
    assert reason == "OOMKilled"
    assert "memory limit of 64Mi" in message and "spec.resources.limits.memory" in message


INGESTED = {"version": "abc123", "snapshotURI": "s3://d/abc123", "rows": 150, "columns": 5,
            "schema": [{"name": "target", "dtype": "int64"}],
            "profile": {"topFeatures": [{"name": "petal length (cm)", "importance": 0.9}],
                        "warnings": []}}
TRAINED = {
    "metrics": {"accuracy": 0.96, "f1_macro": 0.95}, "fitSeconds": 0.4,
    "model": {"name": "iris-rf", "version": 1, "uri": "models:/iris-rf/1"},
    "mlflow": {"runId": "r1", "experimentId": "7"},
    "runtime": {"python": "3.11.7", "sklearn": "1.9.1", "numpy": "2.4.6"},
    "gates": {"passed": True, "failed": []},
    "datasetVersion": "abc123",
    "objective": {"metric": "accuracy", "value": 0.96},
    "alias": {"name": "champion", "moved": True},
}
COMPLETE = [{"type": "Complete", "status": "True"}]


def ready_condition(status: Any) -> Any:
    return next(c for c in status.conditions if c.type == "Ready")


def test_dataset_status_after_ingestion() -> None:
    outcome = dataset_outcome(DATASET, job(COMPLETE), [pod_with_message(INGESTED)])
    status = outcome.status
    assert status.phase == "Ready" and status.version == "abc123" and status.rows == 150
    assert status.history[0].version == "abc123"
    ready = ready_condition(status)
    assert ready.status == "True" and ready.observed_generation == 1
    assert [e.reason for e in outcome.events] == ["Ingested"]
    again = dataset_outcome(replace(DATASET, status=status), job(COMPLETE),
                            [pod_with_message(INGESTED)])
    assert again.events == [] and len(again.status.history) == 1


@pytest.mark.parametrize("passed", [True, False])
def test_training_status_after_success(passed: bool) -> None:
    result = {**TRAINED, "gates": {"passed": passed,
                                   "failed": [] if passed else ["accuracy >= 0.99 (0.96)"]}}
    outcome = training_outcome(TRAINING, job(COMPLETE), [pod_with_message(result)], SETTINGS)
    status = outcome.status.to_wire()
    assert status["phase"] == "Succeeded"
    assert status["objective"] == {"metric": "accuracy", "value": 0.96}
    assert status["model"]["version"] == 1
    assert status["mlflow"]["runURL"] == "http://mlflow:5000/#/experiments/7/runs/r1"
    assert status["datasetVersion"] == "abc123"
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Validated"]["status"] == ("True" if passed else "False")
    assert "alias champion moved to it" in conditions["Registered"]["message"]


@pytest.mark.parametrize(("result", "named"), [
    ({key: value for key, value in TRAINED.items() if key != "gates"}, "result.gates: "),
    ({**TRAINED, "gates": {"failed": []}}, "result.gates.passed: "),
    ({**TRAINED, "model": {"name": "iris-rf"}}, "result.model.version: "),
])
def test_a_malformed_training_result_is_invalid_never_a_pass(
    result: dict[str, Any], named: str,
) -> None:
    outcome = training_outcome(TRAINING, job(COMPLETE), [pod_with_message(result)], SETTINGS)
    status = outcome.status
    ready = ready_condition(status)
    assert status.phase == "Failed" and status.model is None
    assert (ready.status, ready.reason) == ("False", "InvalidResult")
    assert named in ready.message, ready.message
    assert [(e.type, e.reason) for e in outcome.events] == [("Warning", "InvalidResult")]
    assert not any(c.type == "Validated" for c in status.conditions)


def test_a_result_that_is_not_json_or_missing_is_invalid() -> None:
    unreadable = pod_with_message({})
    unreadable["status"]["containerStatuses"][0]["state"]["terminated"]["message"] = "Killed"
    for pods in ([unreadable], []):
        outcome = dataset_outcome(DATASET, job(COMPLETE), pods)
        ready = ready_condition(outcome.status)
        assert (outcome.status.phase, ready.reason) == ("Failed", "InvalidResult")
        assert ready.message.startswith("result")


def test_a_spec_the_api_types_reject_parses_into_its_problem() -> None:
    invalid = parse_training_job({**TRAINING_BODY, "spec": {"datasetRef": {"name": "iris"}}})
    assert isinstance(invalid, Invalid)
    assert invalid.problem.startswith("spec: ") and "algorithm" in invalid.problem
    assert invalid.metadata.name == "iris" and invalid.status.phase is None


def test_the_same_event_posted_again_has_one_name_to_be_counted_on() -> None:
    from mlcycle.kube import event_name

    other = valid(parse_dataset({**DATASET_BODY, "metadata": {
        **DATASET_BODY["metadata"], "uid": "uid-2"}}))
    name = event_name(DATASET, "NewVersion", "version abc")
    assert name == event_name(DATASET, "NewVersion", "version abc")
    assert name.startswith("iris.") and len(name) <= 253
    assert len({name, event_name(DATASET, "NewVersion", "version def"),
                event_name(DATASET, "SameContent", "version abc"),
                event_name(other, "NewVersion", "version abc")}) == 4
