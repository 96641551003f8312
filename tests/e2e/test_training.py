"""The training path end to end: the iris examples through the operator, the trainer Jobs,
MLflow and MinIO; bad input that is refused with a condition naming the field; and an
operator restart in the middle of a training run."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from kubernetes import client
from mlflow import MlflowClient

from localkube import stack
from localkube.stack import Stack
from tests.e2e.mlhelpers import (
    condition,
    events_for,
    jobs_with_label,
    kubectl_apply,
    load_example,
    read,
    storage,
    wait_phase,
)

pytestmark = pytest.mark.e2e
TRAINING_LABEL = "mlcycle.dev/training-job"


def apply_iris(mlstack: Stack, namespace: str, training_changes: dict[str, Any]) -> None:
    for document in (load_example("iris/dataset.yaml"),
                     load_example("iris/trainingjob.yaml", training_changes)):
        code, output = kubectl_apply(mlstack, namespace, document)
        assert code == 0, output


def registry(mlstack: Stack) -> MlflowClient:
    url = mlstack.services.mlflow_url
    return MlflowClient(tracking_uri=url, registry_uri=url)


def test_iris_example_trains_tracks_and_registers_version_1(
    mlstack: Stack, k8s: client.ApiClient, ml_namespace: str
) -> None:
    model_name = f"iris-{ml_namespace}"
    apply_iris(mlstack, ml_namespace, {"spec": {"registry": {"modelName": model_name}}})

    dataset = wait_phase(k8s, "datasets", ml_namespace, "iris", ("Ready", "Failed"))
    assert dataset["status"]["phase"] == "Ready", dataset["status"]
    assert dataset["status"]["rows"] == 150 and len(dataset["status"]["version"]) == 16
    trained = wait_phase(k8s, "trainingjobs", ml_namespace, "iris-rf", ("Succeeded", "Failed"))
    status = trained["status"]
    assert status["phase"] == "Succeeded", status
    assert status["datasetVersion"] == dataset["status"]["version"]
    assert status["model"] == {"name": model_name, "version": 1,
                               "uri": f"models:/{model_name}/1"}
    assert status["objective"]["metric"] == "accuracy" and status["objective"]["value"] > 0.85
    assert condition(trained, "Ready")["status"] == "True"

    run = registry(mlstack).get_run(status["mlflow"]["runId"])
    assert run.data.params["n_estimators"] == "100"
    assert run.data.metrics["accuracy"] == pytest.approx(status["objective"]["value"])
    tags = run.data.tags
    assert tags["mlcycle.dataset.version"] == dataset["status"]["version"]
    assert tags["mlcycle.trainingjob.uid"] == trained["metadata"]["uid"]
    assert {"runtime.python", "runtime.sklearn", "runtime.numpy"} <= set(tags)
    version = registry(mlstack).get_model_version(model_name, "1")
    assert version.run_id == status["mlflow"]["runId"]
    # The data it was trained on, profiled, where the MLflow UI shows the run.
    profile = {a.path for a in registry(mlstack).list_artifacts(version.run_id, "dataset-profile")}
    assert {"dataset-profile/report.html", "dataset-profile/profile.json"} <= profile, profile
    assert any(path.endswith(".png") for path in profile), profile
    assert registry(mlstack).get_model_version_by_alias(model_name, "champion").version == "1"

    s3 = storage(mlstack)
    # This run's model, where the registry says version 1 lives, not any model in the bucket.
    # The tracking server proxies artifacts: mlflow-artifacts:/<key> is s3://<its bucket>/<key>.
    location = registry(mlstack).get_model_version_download_uri(model_name, "1")
    assert location.startswith("mlflow-artifacts:/"), location
    bucket, prefix = mlstack.services.mlflow_bucket, location.split(":", 1)[1].strip("/")
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/").get("Contents", [])
    files = {obj["Key"].removeprefix(f"{prefix}/") for obj in listed}
    assert {"MLmodel", "model.skops"} <= files, files
    mlmodel = yaml.safe_load(s3.get_object(Bucket=bucket, Key=f"{prefix}/MLmodel")["Body"].read())
    assert mlmodel["run_id"] == status["mlflow"]["runId"]
    snapshot_key = dataset["status"]["snapshotURI"].split("/", 3)[3]
    s3.head_object(Bucket=mlstack.services.data_bucket, Key=snapshot_key)

    table = mlstack.kubectl("get", "trainingjobs", "-n", ml_namespace).stdout
    assert "Succeeded" in table and "accuracy" in table
    assert table.splitlines()[1].split()[4] == "1"  # the MODEL VERSION column


@pytest.mark.parametrize(("hyperparameters", "field"), [
    ({"n_estimatorz": 10}, "spec.hyperparameters.n_estimatorz"),
    ({"n_estimators": "many"}, "n_estimators"),
])
def test_bad_hyperparameters_are_refused_without_a_job_and_a_fixed_spec_recovers(
    mlstack: Stack, k8s: client.ApiClient, ml_namespace: str,
    hyperparameters: dict[str, Any], field: str,
) -> None:
    changes = {"spec": {"hyperparameters": hyperparameters,
                        "registry": {"modelName": f"bad-{ml_namespace}"}}}
    apply_iris(mlstack, ml_namespace, changes)
    refused = wait_phase(k8s, "trainingjobs", ml_namespace, "iris-rf", ("Failed",), timeout=90)
    ready = condition(refused, "Ready")
    assert ready["status"] == "False" and ready["reason"] == "InvalidHyperparameters"
    assert field in ready["message"]
    assert not jobs_with_label(k8s, ml_namespace, f"{TRAINING_LABEL}=iris-rf")
    assert any(e.reason == "InvalidHyperparameters" for e in events_for(
        k8s, ml_namespace, "iris-rf"))

    client.CustomObjectsApi(k8s).patch_namespaced_custom_object(
        "mlcycle.dev", "v1alpha1", ml_namespace, "trainingjobs", "iris-rf",
        {"spec": {"hyperparameters": {**dict.fromkeys(hyperparameters), "n_estimators": 20}}})
    fixed = wait_phase(k8s, "trainingjobs", ml_namespace, "iris-rf", ("Succeeded",))
    assert fixed["status"]["model"]["version"] == 1


def test_missing_dataset_waits_without_a_job_then_trains_when_it_appears(
    mlstack: Stack, k8s: client.ApiClient, ml_namespace: str
) -> None:
    training = load_example("iris/trainingjob.yaml",
                            {"spec": {"registry": {"modelName": f"late-{ml_namespace}"}}})
    code, output = kubectl_apply(mlstack, ml_namespace, training)
    assert code == 0, output
    waiting = wait_phase(k8s, "trainingjobs", ml_namespace, "iris-rf", ("Pending",), timeout=60,
                         reason="DatasetNotFound")
    assert "spec.datasetRef.name" in condition(waiting, "Ready")["message"]
    assert not jobs_with_label(k8s, ml_namespace, f"{TRAINING_LABEL}=iris-rf")

    code, output = kubectl_apply(mlstack, ml_namespace, load_example("iris/dataset.yaml"))
    assert code == 0, output
    wait_phase(k8s, "trainingjobs", ml_namespace, "iris-rf", ("Succeeded",))


@pytest.mark.parametrize(("target", "uploaded", "reason"), [
    ("species", True, "TargetColumnMissing"),  # the CSV has no such column
    ("label", False, "SourceUnreadable"),  # no object at that key
])
def test_bad_dataset_is_reported_by_reason_and_blocks_training(
    mlstack: Stack, k8s: client.ApiClient, ml_namespace: str,
    target: str, uploaded: bool, reason: str,
) -> None:
    key = f"datasets/{ml_namespace}/raw/flowers.csv"  # the namespace's own prefix
    if uploaded:
        storage(mlstack).put_object(Bucket=mlstack.services.data_bucket, Key=key,
                                    Body=b"petal,sepal,label\n1.0,2.0,a\n1.5,2.5,b\n")
    dataset = load_example("iris/dataset.yaml", {"spec": {"target": target}})
    dataset["spec"]["source"] = {"s3": f"s3://{mlstack.services.data_bucket}/{key}"}
    code, output = kubectl_apply(mlstack, ml_namespace, dataset)
    assert code == 0, output
    failed = wait_phase(k8s, "datasets", ml_namespace, "iris", ("Failed",), timeout=120)
    ready = condition(failed, "Ready")
    assert ready["reason"] == reason, ready
    assert target in ready["message"] or key in ready["message"], ready["message"]
    assert any(e.reason == reason for e in events_for(k8s, ml_namespace, "iris"))

    training = load_example("iris/trainingjob.yaml",
                            {"spec": {"registry": {"modelName": f"blocked-{ml_namespace}"}}})
    kubectl_apply(mlstack, ml_namespace, training)
    wait_phase(k8s, "trainingjobs", ml_namespace, "iris-rf", ("Pending",), timeout=60,
               reason="DatasetNotReady")
    assert not jobs_with_label(k8s, ml_namespace, f"{TRAINING_LABEL}=iris-rf")


@pytest.mark.parametrize("url", [
    "http://169.254.169.254/latest/meta-data/iris.csv",  # cloud metadata: always refused
    "http://10.96.0.1/iris.csv",  # the Service range, which the operator's settings deny
])
def test_a_url_source_at_a_refused_address_fails_with_source_not_allowed(
    mlstack: Stack, k8s: client.ApiClient, ml_namespace: str, url: str
) -> None:
    dataset = load_example("iris/dataset.yaml")
    dataset["spec"]["source"] = {"url": url}
    code, output = kubectl_apply(mlstack, ml_namespace, dataset)
    assert code == 0, output
    failed = wait_phase(k8s, "datasets", ml_namespace, "iris", ("Failed",), timeout=120)
    ready = condition(failed, "Ready")
    assert ready["reason"] == "SourceNotAllowed", ready
    assert ready["message"].startswith(f"spec.source.url: {url} resolves to "), ready
    assert any(e.reason == "SourceNotAllowed" for e in events_for(k8s, ml_namespace, "iris"))


def test_schema_rejects_an_unknown_algorithm_at_apply_time(
    mlstack: Stack, ml_namespace: str
) -> None:
    training = load_example("iris/trainingjob.yaml", {"spec": {"algorithm": "os.system"}})
    code, output = kubectl_apply(mlstack, ml_namespace, training)
    assert code != 0
    assert "spec.algorithm" in output and "Unsupported value" in output


def test_operator_killed_during_training_finishes_with_one_job_and_one_version(
    mlstack: Stack, k8s: client.ApiClient, ml_namespace: str
) -> None:
    model_name = f"restart-{ml_namespace}"
    # Slow enough to kill the operator while the Job runs: many trees, cross-validated.
    apply_iris(mlstack, ml_namespace, {"spec": {
        "hyperparameters": {"n_estimators": 400, "random_state": 0},
        "registry": {"modelName": model_name}}})
    wait_phase(k8s, "trainingjobs", ml_namespace, "iris-rf", ("Running",), timeout=180)

    stack.kill_operator(mlstack)

    trained = wait_phase(k8s, "trainingjobs", ml_namespace, "iris-rf", ("Succeeded", "Failed"))
    assert trained["status"]["phase"] == "Succeeded", trained["status"]
    assert len(jobs_with_label(k8s, ml_namespace, f"{TRAINING_LABEL}=iris-rf")) == 1
    versions = registry(mlstack).search_model_versions(f"name='{model_name}'")
    assert [v.version for v in versions] == ["1"]
    assert read(k8s, "trainingjobs", ml_namespace, "iris-rf")["status"]["model"]["version"] == 1


def test_a_training_pod_over_its_memory_limit_fails_the_training_job_as_oomkilled(
    mlstack: Stack, k8s: client.ApiClient, ml_namespace: str
) -> None:
    """The kernel kills the trainer (its imports alone outgrow 64Mi), the kubelet reports
    OOMKilled, and the operator says so on the TrainingJob, naming the limit."""
    apply_iris(mlstack, ml_namespace, {"spec": {
        "resources": {"requests": {"memory": "48Mi"}, "limits": {"memory": "64Mi"}},
        "backoffLimit": 0, "registry": {"modelName": f"oom-{ml_namespace}"}}})
    failed = wait_phase(k8s, "trainingjobs", ml_namespace, "iris-rf", ("Succeeded", "Failed"))
    ready = condition(failed, "Ready")
    assert (failed["status"]["phase"], ready["reason"]) == ("Failed", "OOMKilled"), ready
    assert "memory limit of 64Mi" in ready["message"], ready["message"]
    assert any(e.reason == "OOMKilled" and e.type == "Warning"
               for e in events_for(k8s, ml_namespace, "iris-rf"))
