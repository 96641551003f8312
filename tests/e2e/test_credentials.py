"""No secret leaks. A namespace of its own runs the iris flow (ingest, train, register,
serve, predict) and a dataset its storage user may not read; then every Pod log and
termination message, Event, object status, MLflow param and tag, and the operator's log of the
whole run (tests/e2e/conftest.py runs this file last) is searched for each secret value:
MinIO's root secret key, MLflow's admin password, and every namespace's own S3 secret key and
MLflow password. (The other tests' namespaces are gone by then, with their Pods' logs: the
flow here is what leaves a namespace's credentials and logs behind to search.)"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import httpx
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from mlflow import MlflowClient
from mlflow.entities import ViewType

from localkube import services, stack
from localkube.stack import Stack
from tests.e2e.mlhelpers import condition, kubectl_apply, load_example, wait_phase

pytestmark = pytest.mark.e2e

TENANT_SECRET = "mlcycle-tenant"
SECRET_KEYS = ("secretKey", "mlflowPassword")  # the user names are not secrets
GROUP, VERSION = "mlcycle.dev", "v1alpha1"
KINDS = ("datasets", "trainingjobs", "modeldeployments")


def secret_values(mlstack: Stack, core: client.CoreV1Api) -> dict[str, str]:
    """What must never be seen, by a name that may be."""
    values = {"MinIO root secret key": mlstack.credentials.secret_key,
              "MLflow admin password": services.load_mlflow_admin(mlstack.paths).password}
    for secret in core.list_secret_for_all_namespaces(
            field_selector=f"metadata.name={TENANT_SECRET}").items:
        for key in SECRET_KEYS:
            value = base64.b64decode((secret.data or {}).get(key, "")).decode()
            values[f"{secret.metadata.namespace}/{TENANT_SECRET} {key}"] = value
    return values


def pod_texts(k8s: client.ApiClient) -> Iterator[tuple[str, str]]:
    """Each container's log and each Pod's status (termination messages included)."""
    core = client.CoreV1Api(k8s)
    for pod in core.list_pod_for_all_namespaces().items:
        where = f"pod {pod.metadata.namespace}/{pod.metadata.name}"
        yield f"{where} status", json.dumps(k8s.sanitize_for_serialization(pod.status))
        for container in pod.spec.containers:
            try:
                yield f"{where} log of {container.name}", core.read_namespaced_pod_log(
                    pod.metadata.name, pod.metadata.namespace, container=container.name) or ""
            except ApiException as error:  # not started, or already gone
                if error.status not in (400, 404):
                    raise


def object_texts(k8s: client.ApiClient) -> Iterator[tuple[str, str]]:
    """Every Event, and the status of every custom resource, Job and Deployment."""
    for event in client.CoreV1Api(k8s).list_event_for_all_namespaces().items:
        yield (f"event {event.metadata.namespace}/{event.metadata.name}",
               f"{event.reason} {event.message}")
    custom = client.CustomObjectsApi(k8s)
    for plural in KINDS:
        for found in custom.list_cluster_custom_object(GROUP, VERSION, plural)["items"]:
            metadata = found["metadata"]
            yield (f"{plural} {metadata['namespace']}/{metadata['name']}",
                   json.dumps(found.get("status") or {}) + json.dumps(found.get("spec") or {}))
    jobs = client.BatchV1Api(k8s).list_job_for_all_namespaces().items
    deployments = client.AppsV1Api(k8s).list_deployment_for_all_namespaces().items
    for kind, items in (("job", jobs), ("deployment", deployments)):
        for item in items:
            yield (f"{kind} {item.metadata.namespace}/{item.metadata.name}",
                   json.dumps(k8s.sanitize_for_serialization(item.status)))


def mlflow_texts(mlstack: Stack) -> Iterator[tuple[str, str]]:
    """Every run's params and tags, and every registered model's and version's tags."""
    url = mlstack.services.mlflow_url
    mlflow = MlflowClient(url, url)  # as the admin (tests/conftest.py), who sees everything
    experiments = mlflow.search_experiments(view_type=ViewType.ALL)
    for experiment in experiments:
        for run in mlflow.search_runs([experiment.experiment_id], run_view_type=ViewType.ALL,
                                      max_results=5000):
            yield (f"MLflow run {run.info.run_id}",
                   json.dumps({"params": run.data.params, "tags": run.data.tags}))
    for model in mlflow.search_registered_models(max_results=1000):
        yield f"MLflow model {model.name}", json.dumps(model.tags)
        for version in mlflow.search_model_versions(f"name='{model.name}'"):
            yield f"MLflow model {model.name} version {version.version}", json.dumps(
                version.tags)


def run_flows(mlstack: Stack, k8s: client.ApiClient, namespace: str) -> None:
    """The iris flow up to a prediction, and a source outside the namespace's prefix."""
    model = {"model": {"name": f"creds-{namespace}"}}
    denied = load_example("iris/dataset.yaml", {"metadata": {"name": "denied"}})
    denied["spec"]["source"] = {"s3": "s3://mlcycle-data/datasets/another-team/iris.csv"}
    for document in (load_example("iris/dataset.yaml"), denied,
                     load_example("iris/trainingjob.yaml",
                                  {"spec": {"registry": {"modelName": model["model"]["name"]}}}),
                     load_example("iris/modeldeployment.yaml", {"spec": model})):
        code, output = kubectl_apply(mlstack, namespace, document)
        assert code == 0, output
    refused = wait_phase(k8s, "datasets", namespace, "denied", ("Failed",), timeout=120)
    assert condition(refused, "Ready")["reason"] == "SourceAccessDenied"
    wait_phase(k8s, "modeldeployments", namespace, "iris", ("Available",), timeout=600)
    for pod in client.CoreV1Api(k8s).list_namespaced_pod(
            namespace, label_selector="mlcycle.dev/model-deployment=iris").items:
        response = httpx.post(f"http://{pod.status.pod_ip}:8080/invocations", timeout=30,
                              json={"dataframe_records": [{"sepal length (cm)": 5.1,
                                                           "sepal width (cm)": 3.5,
                                                           "petal length (cm)": 1.4,
                                                           "petal width (cm)": 0.2}]})
        assert response.status_code == 200, response.text


def test_no_secret_value_appears_in_logs_events_status_or_mlflow(
    mlstack: Stack, k8s: client.ApiClient, ml_namespace: str
) -> None:
    run_flows(mlstack, k8s, ml_namespace)
    values = secret_values(mlstack, client.CoreV1Api(k8s))
    assert len(values) > 2, "no namespace credentials to look for: did no flow run?"
    assert all(len(value) >= 16 for value in values.values()), "a secret too short to search"
    sources = [*pod_texts(k8s), *object_texts(k8s), *mlflow_texts(mlstack),
               ("the operator's log", stack.operator_log(mlstack))]
    assert len(sources) > 10
    hits = [f"{name} in {where}" for where, text in sources
            for name, value in values.items() if value in text]
    assert not hits, hits  # names where, never the value
