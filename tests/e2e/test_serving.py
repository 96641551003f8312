"""Serving end to end: the iris ModelDeployment example after training; predictions from each
pod in every protocol; bad requests; a model from another runtime refused; and a rollout
to a new version, when the alias moves, that fails not one request sent to its Service."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import mlflow
import mlflow.sklearn
import pandas as pd
import pytest
from kubernetes import client
from mlflow import MlflowClient
from sklearn.datasets import load_iris

from localkube import testing
from localkube.paths import local_paths
from localkube.realnode import node
from localkube.stack import Stack
from localkube.testing import wait_for
from tests.e2e.mlhelpers import condition, kubectl_apply, load_example, read, wait_phase

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class Served:
    namespace: str
    model_name: str
    registry: MlflowClient


@pytest.fixture(scope="module")
def served(mlstack: Stack, k8s: client.ApiClient) -> Iterator[Served]:
    """The three iris examples applied in one namespace, trained and served."""
    namespace = testing.create_namespace(mlstack.cluster.kubeconfig, prefix="serve")
    model_name = f"iris-{namespace}"
    model = {"spec": {"model": {"name": model_name}}}
    for document in (
        load_example("iris/dataset.yaml"),
        load_example("iris/trainingjob.yaml", {"spec": {"registry": {"modelName": model_name}}}),
        load_example("iris/modeldeployment.yaml", model),
    ):
        code, output = kubectl_apply(mlstack, namespace, document)
        assert code == 0, output
    url = mlstack.services.mlflow_url
    mlflow.set_tracking_uri(url)  # for mlflow.sklearn.load_model("models:/...")
    yield Served(namespace, model_name, MlflowClient(tracking_uri=url, registry_uri=url))
    testing.delete_namespace(mlstack.cluster.kubeconfig, namespace, until_gone=False)


def wait_serving(k8s: client.ApiClient, namespace: str, name: str, version: int,
                 replicas: int = 2, timeout: float = 300) -> dict[str, Any]:
    def serving() -> dict[str, Any] | None:
        found = read(k8s, "modeldeployments", namespace, name)
        status = found.get("status") or {}
        done = (status.get("servedVersion") == version and status.get("readyReplicas") == replicas
                and condition(found, "Ready")["status"] == "True")
        return found if done else None

    return wait_for(f"{name} to serve version {version} on {replicas} replicas", serving,
                    timeout=timeout, interval=1)


def serving_pods(k8s: client.ApiClient, namespace: str, name: str) -> list[Any]:
    pods = client.CoreV1Api(k8s).list_namespaced_pod(
        namespace, label_selector=f"mlcycle.dev/model-deployment={name}").items
    return [p for p in pods if p.metadata.deletion_timestamp is None]


def iris_rows() -> pd.DataFrame:
    features = load_iris(as_frame=True).data
    return features.iloc[[0, 50, 100, 149]].reset_index(drop=True)


def test_each_pod_answers_every_protocol_exactly_as_the_model_predicts(
    mlstack: Stack, k8s: client.ApiClient, served: Served
) -> None:
    deployment = wait_serving(k8s, served.namespace, "iris", 1)
    rows = iris_rows()
    model = mlflow.sklearn.load_model(f"models:/{served.model_name}/1")
    expected = [int(v) for v in model.predict(rows[list(model.feature_names_in_)])]

    pods = serving_pods(k8s, served.namespace, "iris")
    assert len({pod.status.pod_ip for pod in pods}) == 2
    name = served.model_name
    for pod in pods:
        base = f"http://{pod.status.pod_ip}:8080"
        v2 = httpx.post(f"{base}/v2/models/{name}/infer", json={"inputs": [
            {"name": column, "shape": [len(rows)], "datatype": "FP64",
             "data": rows[column].tolist()} for column in rows.columns]}).json()
        assert v2["outputs"][0]["data"] == expected
        v1 = httpx.post(f"{base}/v1/models/{name}:predict",
                        json={"instances": rows.to_dict(orient="records")}).json()
        assert v1["predictions"] == expected
        split = httpx.post(f"{base}/invocations", json={"dataframe_split": {
            "columns": list(rows.columns), "data": rows.values.tolist()}}).json()
        assert split["predictions"] == expected

        version = httpx.get(f"{base}/version").json()
        recorded = served.registry.get_model_version(name, "1").tags
        for key in ("python", "sklearn", "numpy"):
            assert version["runtime"]["serving"][key] == recorded[f"runtime.{key}"]
            assert deployment["status"]["runtime"][key] == recorded[f"runtime.{key}"]


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"dataframe_split": {"columns": ["a", "b"], "data": [[1, 2]]}}, 400, "unknown ['a', 'b']"),
    ({"dataframe_records": [{**dict.fromkeys(load_iris().feature_names, 1.0),
                             "sepal length (cm)": "long"}]}, 400, "sepal length (cm)"),
    (b"", 400, "empty"),
    (b"{not json", 400, "JSON"),
    (b"[" + b"1," * 5_000_000 + b"1]", 413, "exceeds the limit"),
])
def test_bad_requests_get_a_4xx_naming_the_problem_and_the_pod_keeps_running(
    k8s: client.ApiClient, served: Served, body: Any, status: int, words: str
) -> None:
    wait_serving(k8s, served.namespace, "iris", 1)
    pod = serving_pods(k8s, served.namespace, "iris")[0]
    url = f"http://{pod.status.pod_ip}:8080/invocations"
    response = (httpx.post(url, json=body) if isinstance(body, dict)
                else httpx.post(url, content=body, headers={"content-type": "application/json"}))
    assert response.status_code == status, response.text
    assert words.lower() in response.json()["error"].lower()
    again = client.CoreV1Api(k8s).read_namespaced_pod(pod.metadata.name, served.namespace)
    assert again.status.container_statuses[0].restart_count == 0
    assert httpx.get(f"http://{pod.status.pod_ip}:8080/v2/health/ready").status_code == 200


def test_a_model_trained_in_another_runtime_is_refused_and_the_served_one_stays(
    mlstack: Stack, k8s: client.ApiClient, served: Served
) -> None:
    wait_serving(k8s, served.namespace, "iris", 1)
    good = served.registry.get_model_version(served.model_name, "1")
    other = f"other-{served.namespace}"
    served.registry.create_registered_model(other)
    # MLflow's admin (this test) made it: the namespace may serve it once granted (README).
    from mlflow.server.auth.client import AuthServiceClient  # loads the server: only here

    AuthServiceClient(mlstack.services.mlflow_url).grant_user_permission(
        f"mlcycle-ns-{served.namespace}", "registered_model", other, "READ")
    for tags in (good.tags, {**good.tags, "runtime.sklearn": "1.0.2"}):
        served.registry.create_model_version(
            other, good.source, run_id=good.run_id, tags=tags,
            model_id=good.model_id or good.source.removeprefix("models:/"))
    served.registry.set_registered_model_alias(other, "live", "1")
    deployment = load_example("iris/modeldeployment.yaml", {
        "metadata": {"name": "other"},
        "spec": {"model": {"name": other, "alias": "live"}, "replicas": 1,
                 "pollIntervalSeconds": 5}})
    code, output = kubectl_apply(mlstack, served.namespace, deployment)
    assert code == 0, output
    wait_serving(k8s, served.namespace, "other", 1, replicas=1)

    served.registry.set_registered_model_alias(other, "live", "2")

    def refused() -> dict[str, Any] | None:
        found = read(k8s, "modeldeployments", served.namespace, "other")
        kinds = {c["type"]: c for c in found["status"].get("conditions", [])}
        return found if "RuntimeMismatch" in kinds else None

    found = wait_for("the RuntimeMismatch condition", refused, timeout=60)
    message = condition(found, "RuntimeMismatch")["message"]
    assert "1.0.2" in message and good.tags["runtime.sklearn"] in message
    assert found["status"]["servedVersion"] == 1
    pods = serving_pods(k8s, served.namespace, "other")
    assert [p.metadata.labels["mlcycle.dev/model-version"] for p in pods] == ["1"]
    ready = httpx.get(f"http://{pods[0].status.pod_ip}:8080/v2/health/ready")
    assert ready.status_code == 200


def container_process_tree(pod: Any) -> set[int]:
    """The pids, as the container sees them, of its main process and all its descendants."""
    main = node.container_pid(local_paths(), pod)
    parents, inner = {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, StopIteration):
            status = dict(line.split(":\t", 1) for line in
                          (entry / "status").read_text().splitlines() if ":\t" in line)
            parents[int(entry.name)] = int(status["PPid"])
            inner[int(entry.name)] = int(status["NSpid"].split()[-1])

    def descends(pid: int) -> bool:
        while pid > 1:
            if pid == main:
                return True
            pid = parents.get(pid, 0)
        return False

    return {inner[pid] for pid in inner if descends(pid)}


def test_serving_workers_2_is_two_server_processes_answering_on_one_port(
    mlstack: Stack, k8s: client.ApiClient, served: Served
) -> None:
    wait_serving(k8s, served.namespace, "iris", 1)
    deployment = load_example("iris/modeldeployment.yaml", {
        "metadata": {"name": "workers"},
        "spec": {"model": {"name": served.model_name}, "replicas": 1, "serving": {"workers": 2}}})
    code, output = kubectl_apply(mlstack, served.namespace, deployment)
    assert code == 0, output
    wait_serving(k8s, served.namespace, "workers", 1, replicas=1)
    [pod] = serving_pods(k8s, served.namespace, "workers")
    base = f"http://{pod.status.pod_ip}:8080"
    body = {"instances": iris_rows().values.tolist()}
    answered: set[int] = set()
    for _ in range(64):  # a new connection each time; the kernel spreads them over the workers
        assert httpx.post(f"{base}/v1/models/{served.model_name}:predict", json=body).is_success
        answered.add(httpx.get(f"{base}/version").json()["server"]["pid"])
        if len(answered) == 2:
            break
    assert len(answered) == 2, answered

    container = pod.status.container_statuses[0]
    assert container.restart_count == 0
    assert answered <= container_process_tree(pod)
    logs = mlstack.kubectl("logs", "-n", served.namespace, pod.metadata.name).stdout
    started = {json.loads(line)["pid"] for line in logs.splitlines()
               if '"Started worker"' in line}
    assert started == answered


def test_alias_move_rolls_out_version_2_without_one_failed_request(
    mlstack: Stack, k8s: client.ApiClient, served: Served
) -> None:
    wait_serving(k8s, served.namespace, "iris", 1)
    rows = iris_rows()
    body = {"inputs": [{"name": column, "shape": [len(rows)], "datatype": "FP64",
                        "data": rows[column].tolist()} for column in rows.columns]}
    results: list[tuple[int | None, str]] = []
    stop = threading.Event()
    service = client.CoreV1Api(k8s).read_namespaced_service("iris", served.namespace)
    url = (f"http://{service.spec.cluster_ip}:{service.spec.ports[0].port}"
           f"/v2/models/{served.model_name}/infer")

    def traffic() -> None:
        """A client of the Service: a new connection per request, so kube-proxy picks a
        ready endpoint for each."""
        no_keepalive = httpx.Limits(max_keepalive_connections=0)
        with httpx.Client(timeout=10, limits=no_keepalive) as http:
            while not stop.is_set():
                try:
                    response = http.post(url, json=body)
                    results.append((response.status_code,
                                    response.json().get("model_version", response.text)))
                except httpx.HTTPError as error:
                    results.append((None, repr(error)))

    sender = threading.Thread(target=traffic, daemon=True)
    sender.start()
    retrain = load_example("iris/trainingjob.yaml", {
        "metadata": {"name": "iris-rf-v2"},
        "spec": {"hyperparameters": {"n_estimators": 30, "random_state": 1},
                 "registry": {"modelName": served.model_name}}})
    code, output = kubectl_apply(mlstack, served.namespace, retrain)
    assert code == 0, output
    trained = wait_phase(k8s, "trainingjobs", served.namespace, "iris-rf-v2", ("Succeeded",))
    assert trained["status"]["model"]["version"] == 2
    wait_serving(k8s, served.namespace, "iris", 2, timeout=300)
    wait_for("old pods to be gone", lambda: all(
        p.metadata.labels["mlcycle.dev/model-version"] == "2"
        for p in serving_pods(k8s, served.namespace, "iris")), timeout=120)
    time.sleep(2)
    stop.set()
    sender.join(timeout=30)

    failures = [r for r in results if r[0] != 200]
    assert len(results) > 100, "the client sent too little traffic to prove anything"
    assert failures == [], f"{len(failures)} of {len(results)} requests failed: {failures[:5]}"
    assert {version for _, version in results} == {"1", "2"}
    history = read(k8s, "modeldeployments", served.namespace, "iris")["status"]["history"]
    assert [record["version"] for record in history[:2]] == [2, 1]
