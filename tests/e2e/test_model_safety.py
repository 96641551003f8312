"""Only skops models are served, end to end: versions logged with pickle or as a pyfunc are
refused by the operator (`UnsafeModelFormat`) while the version already serving stays, and
none of the model's code runs. (The server's own refusal, defence in depth, is tested over a
real MLflow server in tests/serving_unit.)"""

from __future__ import annotations

import base64
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import mlflow
import mlflow.pyfunc
import mlflow.sklearn
import pytest
from kubernetes import client
from mlflow import MlflowClient
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from localkube import stack, testing
from localkube.stack import Stack
from localkube.testing import wait_for
from mlcycle_contract.environment import runtime_tag
from mlcycle_contract.runtime import RUNTIME_KEYS
from tests.e2e.mlhelpers import condition, kubectl_apply, load_example, read

pytestmark = pytest.mark.e2e

DEPLOYMENT = "guarded"
TENANT_SECRET = "mlcycle-tenant"


@dataclass(frozen=True)
class Registry:
    namespace: str
    model_name: str
    client: MlflowClient
    marker_dir: Path
    runtime: dict[str, str]
    """The serving image's runtime: every version is tagged with it, so only formats differ."""

    @property
    def marker(self) -> Path:
        return self.marker_dir / "load_context-ran"


@pytest.fixture(scope="module")
def registry(mlstack: Stack, k8s: client.ApiClient) -> Iterator[Registry]:
    """A namespace whose ModelDeployment follows the alias `live` of a model that this test
    registers as the namespace's own MLflow user (as its trainer would)."""
    namespace = testing.create_namespace(mlstack.cluster.kubeconfig, prefix="safety")
    marker_dir = Path(f"/tmp/mlcycle-safety-{namespace}")
    try:
        model_name = f"guarded-{namespace}"
        code, output = kubectl_apply(mlstack, namespace, load_example(
            "iris/modeldeployment.yaml", {
                "metadata": {"name": DEPLOYMENT},
                "spec": {"model": {"name": model_name, "alias": "live"}, "replicas": 1,
                         "pollIntervalSeconds": 5, "resources": {"requests": {"cpu": "10m"}}}}))
        assert code == 0, output
        # Refused until the model exists; by then the operator has made the namespace's users.
        wait_for("ModelNotFound", lambda: "ModelNotFound" in str(
            read(k8s, "modeldeployments", namespace, DEPLOYMENT).get("status")), timeout=60)
        secret = client.CoreV1Api(k8s).read_namespaced_secret(TENANT_SECRET, namespace)
        user = {key: base64.b64decode(value).decode() for key, value in secret.data.items()}
        url = mlstack.services.mlflow_url
        marker_dir.mkdir(mode=0o777)
        marker_dir.chmod(0o777)  # writable by anyone: only the model itself could fill it
        with pytest.MonkeyPatch.context() as environment:
            environment.setenv("MLFLOW_TRACKING_USERNAME", user["mlflowUsername"])
            environment.setenv("MLFLOW_TRACKING_PASSWORD", user["mlflowPassword"])
            mlflow.set_tracking_uri(url)
            mlflow.set_experiment(f"safety-{namespace}")
            runtime = dict(item.split("=", 1) for item in
                           stack.image_runtime(mlstack.paths, mlstack.images["serving"]).split(","))
            yield Registry(namespace, model_name, MlflowClient(url, url), marker_dir, runtime)
    finally:
        testing.delete_namespace(mlstack.cluster.kubeconfig, namespace, until_gone=False)
        shutil.rmtree(marker_dir, ignore_errors=True)


class WritesAMarker(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
    """Code from the registry: were it ever loaded, it would leave a file behind."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def load_context(self, context):  # type: ignore[no-untyped-def]
        Path(self.marker).write_text("the model's own code ran")

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        return model_input


def log_version(registry: Registry, **how: Any) -> int:
    """Log and register one version, tagged with the serving runtime."""
    features, target = load_iris(return_X_y=True, as_frame=True)
    with mlflow.start_run():
        if "python_model" in how:
            info = mlflow.pyfunc.log_model(
                name="model", registered_model_name=registry.model_name,
                pip_requirements=["pandas"], **how)
        else:
            estimator = LogisticRegression(max_iter=500).fit(features, target)
            info = mlflow.sklearn.log_model(
                estimator, name="model", registered_model_name=registry.model_name,
                input_example=features.head(2), pip_requirements=["scikit-learn"], **how)
    version = str(info.registered_model_version)
    for key in RUNTIME_KEYS:
        registry.client.set_model_version_tag(
            registry.model_name, version, runtime_tag(key), registry.runtime[key])
    return int(version)


def served_pods(k8s: client.ApiClient, namespace: str) -> list[Any]:
    pods = client.CoreV1Api(k8s).list_namespaced_pod(
        namespace, label_selector=f"mlcycle.dev/model-deployment={DEPLOYMENT}").items
    return [p for p in pods if p.metadata.deletion_timestamp is None]


def wait_served(k8s: client.ApiClient, namespace: str, version: int) -> dict[str, Any]:
    def serving() -> dict[str, Any] | None:
        found = read(k8s, "modeldeployments", namespace, DEPLOYMENT)
        status = found.get("status") or {}
        ready = status.get("servedVersion") == version and status.get("readyReplicas") == 1
        return found if ready and condition(found, "Ready")["status"] == "True" else None

    return wait_for(f"version {version} to serve", serving, timeout=300, interval=1)


def wait_refused(k8s: client.ApiClient, namespace: str, words: str) -> dict[str, Any]:
    def refused() -> dict[str, Any] | None:
        found = read(k8s, "modeldeployments", namespace, DEPLOYMENT)
        degraded = {c["type"]: c for c in found["status"].get("conditions", [])}.get("Degraded")
        return found if degraded and words in degraded["message"] else None

    return wait_for(f"UnsafeModelFormat naming {words!r}", refused, timeout=120, interval=1)


def assert_first_version_still_serves(k8s: client.ApiClient, registry: Registry) -> None:
    found = read(k8s, "modeldeployments", registry.namespace, DEPLOYMENT)
    assert found["status"]["servedVersion"] == 1
    assert found["status"]["phase"] == "Degraded"
    pods = served_pods(k8s, registry.namespace)
    assert [p.metadata.labels["mlcycle.dev/model-version"] for p in pods] == ["1"]
    base = f"http://{pods[0].status.pod_ip}:8080"
    assert httpx.get(f"{base}/v2/health/ready").status_code == 200
    answer = httpx.post(f"{base}/invocations", json={"inputs": [[5.1, 3.5, 1.4, 0.2]]})
    assert answer.json() == {"predictions": [0]}


def test_pickled_and_pyfunc_versions_are_refused_and_the_skops_version_keeps_serving(
    mlstack: Stack, k8s: client.ApiClient, registry: Registry
) -> None:
    assert log_version(registry, serialization_format="skops") == 1
    registry.client.set_registered_model_alias(registry.model_name, "live", "1")
    wait_served(k8s, registry.namespace, 1)
    [pod] = served_pods(k8s, registry.namespace)
    env = {e.name: e.value for e in pod.spec.containers[0].env}
    assert env["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] == "false"

    assert log_version(registry, serialization_format="pickle") == 2
    registry.client.set_registered_model_alias(registry.model_name, "live", "2")
    found = wait_refused(k8s, registry.namespace, "serialized with pickle")
    degraded = condition(found, "Degraded")
    assert degraded["reason"] == "UnsafeModelFormat"
    assert f"model {registry.model_name} version 2 is a scikit-learn model serialized with " \
        "pickle; only the scikit-learn flavor in the skops format" in degraded["message"]
    assert condition(found, "Ready")["reason"] == "UnsafeModelFormat"
    assert_first_version_still_serves(k8s, registry)

    pyfunc = log_version(registry, python_model=WritesAMarker(str(registry.marker)))
    assert pyfunc == 3
    registry.client.set_registered_model_alias(registry.model_name, "live", "3")
    found = wait_refused(k8s, registry.namespace, "a pyfunc loaded by mlflow.pyfunc.model")
    assert "version 3" in condition(found, "Degraded")["message"]
    assert_first_version_still_serves(k8s, registry)
    assert not registry.marker.exists()  # the operator's host: it only read the MLmodel file
