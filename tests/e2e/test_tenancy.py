"""Each namespace is its own tenant, tried on the local cluster with the real MinIO and MLflow.

The iris flow runs in two namespaces, each with the credentials the operator wrote for it.
Then a Pod in one, with those credentials as every workload Pod gets them, tries to read,
write and list the other's data prefix and model artifacts, to register a version of the
other's model and to move its alias: MinIO's policy and MLflow's permissions refuse each.
An image override is refused unless the operator's allow-list names it: its Pod would run
with the namespace's credentials."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from kubernetes import client
from mlflow import MlflowClient

from localkube import services, testing
from localkube.stack import Stack
from localkube.testing import wait_for
from mlcycle.builders.common import (
    container_security_context,
    pod_security_context,
    storage_environment,
)
from mlcycle.settings import Settings
from tests.e2e.mlhelpers import condition, jobs_with_label, kubectl_apply, load_example, wait_phase

pytestmark = pytest.mark.e2e

FOREIGN_IMAGE = "evil.example/steal-credentials:1"
TENANT_SECRET = "mlcycle-tenant"
ARTIFACTS = "mlflow-artifacts:/"


@dataclass(frozen=True)
class Tenant:
    """A namespace that ran the iris flow: where its snapshot and model are."""

    namespace: str
    model: str
    snapshot_key: str  # in the data bucket
    artifacts: str  # the model version's artifact path, behind mlflow-artifacts:/


def run_iris(mlstack: Stack, namespace: str) -> None:
    model = {"registry": {"modelName": f"iris-{namespace}"}}
    for document in (load_example("iris/dataset.yaml"),
                     load_example("iris/trainingjob.yaml", {"spec": model}),
                     # One small replica: the shared test node's CPU is mostly requested.
                     load_example("iris/modeldeployment.yaml", {"spec": {
                         "model": {"name": f"iris-{namespace}"}, "replicas": 1,
                         "resources": {"requests": {"cpu": "10m"}}}})):
        code, output = kubectl_apply(mlstack, namespace, document)
        assert code == 0, output


@pytest.fixture(scope="module")
def tenants(mlstack: Stack, k8s: client.ApiClient) -> Iterator[tuple[Tenant, Tenant]]:
    """Two namespaces, each through the whole iris flow: ingested, trained, served."""
    kubeconfig = mlstack.cluster.kubeconfig
    namespaces = [testing.create_namespace(kubeconfig, prefix=p) for p in ("tenant-a", "tenant-b")]
    for namespace in namespaces:
        run_iris(mlstack, namespace)
    admin = MlflowClient(mlstack.services.mlflow_url, mlstack.services.mlflow_url)
    found = []
    for namespace in namespaces:
        trained = wait_phase(k8s, "trainingjobs", namespace, "iris-rf", ("Succeeded", "Failed"),
                             timeout=600)
        assert trained["status"]["phase"] == "Succeeded", trained["status"]
        dataset = wait_phase(k8s, "datasets", namespace, "iris", ("Ready",))
        model = f"iris-{namespace}"
        source = admin.get_model_version_download_uri(model, "1")
        assert source.startswith(ARTIFACTS), source
        found.append(Tenant(namespace, model,
                            dataset["status"]["snapshotURI"].split("/", 3)[3],
                            source.removeprefix(ARTIFACTS).strip("/")))
    yield found[0], found[1]
    for namespace in namespaces:
        testing.delete_namespace(kubeconfig, namespace, until_gone=False)


def secret_values(mlstack: Stack) -> set[str]:
    """MinIO's root and MLflow's admin credentials: no Pod may hold them."""
    root = mlstack.credentials
    return {root.access_key, root.secret_key, services.load_mlflow_admin(mlstack.paths).password}


def test_the_iris_flow_serves_in_each_namespace_with_its_own_credentials_only(
    mlstack: Stack, k8s: client.ApiClient, tenants: tuple[Tenant, Tenant]
) -> None:
    core = client.CoreV1Api(k8s)
    admin_values = secret_values(mlstack)
    users = set()
    for tenant in tenants:
        served = wait_phase(k8s, "modeldeployments", tenant.namespace, "iris", ("Available",),
                            timeout=300)
        assert served["status"]["servedVersion"] == 1
        secret = core.read_namespaced_secret(TENANT_SECRET, tenant.namespace).data
        values = {key: base64.b64decode(value).decode() for key, value in secret.items()}
        assert values["accessKey"] == values["mlflowUsername"] == f"mlcycle-ns-{tenant.namespace}"
        assert not admin_values & set(values.values())
        users.add(values["accessKey"])
        pods = core.list_namespaced_pod(tenant.namespace).items
        assert pods
        for pod in pods:
            for container in pod.spec.containers:
                references = {e.value_from.secret_key_ref.name for e in container.env or []
                              if e.value_from and e.value_from.secret_key_ref}
                assert references == {TENANT_SECRET}, (pod.metadata.name, references)
                assert not admin_values & {e.value for e in container.env or [] if e.value}
    assert len(users) == 2


def test_an_image_off_the_allow_list_is_refused_and_no_pod_runs(
    mlstack: Stack, k8s: client.ApiClient, ml_namespace: str
) -> None:
    for document in (load_example("iris/trainingjob.yaml", {"spec": {"image": FOREIGN_IMAGE}}),
                     load_example("iris/modeldeployment.yaml", {"spec": {"image": FOREIGN_IMAGE}})):
        code, output = kubectl_apply(mlstack, ml_namespace, document)
        assert code == 0, output
    for plural, name in (("trainingjobs", "iris-rf"), ("modeldeployments", "iris")):
        refused = wait_phase(k8s, plural, ml_namespace, name, ("Failed",), timeout=90)
        ready = condition(refused, "Ready")
        assert (ready["status"], ready["reason"]) == ("False", "ImageNotAllowed"), ready
        assert ready["message"].startswith(f"spec.image: {FOREIGN_IMAGE!r} is not on"), ready
    assert not jobs_with_label(k8s, ml_namespace, "mlcycle.dev/training-job")
    assert not client.AppsV1Api(k8s).list_namespaced_deployment(ml_namespace).items
    assert not client.CoreV1Api(k8s).list_namespaced_pod(ml_namespace).items

# What a Pod in namespace A tries with A's credentials, as every workload Pod gets them (the
# operator's Secret, through secretKeyRefs). Each attempt prints "allowed" or why it failed.
PROBE = r'''
import json, os, urllib.request, urllib.error, base64
import boto3
from botocore.exceptions import ClientError
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

e = os.environ
s3 = boto3.client("s3")
mlflow_url = e["MLFLOW_TRACKING_URI"]
registry = MlflowClient(mlflow_url, mlflow_url)
basic = base64.b64encode(
    f"{e['MLFLOW_TRACKING_USERNAME']}:{e['MLFLOW_TRACKING_PASSWORD']}".encode()).decode()

def rest(method, path, body=None):
    request = urllib.request.Request(
        mlflow_url + path, method=method, data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Basic {basic}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return answer.read()

def attempt(call):
    try:
        call()
        return "allowed"
    except ClientError as error:
        return "denied: " + error.response["Error"]["Code"]
    except urllib.error.HTTPError as error:
        return f"denied: HTTP {error.code}"
    except MlflowException as error:
        return f"denied: {error.error_code}"

data, own, other = e["PROBE_DATA_BUCKET"], e["PROBE_OWN"], e["PROBE_OTHER"]
own_snapshot, other_snapshot = e["PROBE_OWN_SNAPSHOT_KEY"], e["PROBE_OTHER_SNAPSHOT_KEY"]
own_model, other_model = e["PROBE_OWN_MODEL"], e["PROBE_OTHER_MODEL"]
other_artifacts = e["PROBE_OTHER_ARTIFACTS"]
results = {
    "read own snapshot": attempt(lambda: s3.get_object(Bucket=data, Key=own_snapshot)),
    "list own prefix": attempt(lambda: s3.list_objects_v2(Bucket=data, Prefix=f"datasets/{own}/")),
    "read own model": attempt(lambda: registry.get_model_version_by_alias(own_model, "champion")),
    "read other snapshot": attempt(lambda: s3.get_object(Bucket=data, Key=other_snapshot)),
    "list other prefix": attempt(
        lambda: s3.list_objects_v2(Bucket=data, Prefix=f"datasets/{other}/")),
    "list data bucket": attempt(lambda: s3.list_objects_v2(Bucket=data)),
    "write other prefix": attempt(
        lambda: s3.put_object(Bucket=data, Key=f"datasets/{other}/planted.csv", Body=b"x")),
    "overwrite other snapshot": attempt(
        lambda: s3.put_object(Bucket=data, Key=other_snapshot, Body=b"x")),
    "read other model artifacts in S3": attempt(lambda: s3.get_object(
        Bucket=e["PROBE_ARTIFACT_BUCKET"], Key=f"{other_artifacts}/MLmodel")),
    "list artifact bucket": attempt(
        lambda: s3.list_objects_v2(Bucket=e["PROBE_ARTIFACT_BUCKET"])),
    "read other model artifacts through MLflow": attempt(lambda: rest(
        "GET", f"/api/2.0/mlflow-artifacts/artifacts/{other_artifacts}/MLmodel")),
    "list other model artifacts through MLflow": attempt(lambda: rest(
        "GET", f"/api/2.0/mlflow-artifacts/artifacts?path={other_artifacts}")),
    "read other model": attempt(lambda: rest(
        "GET", f"/api/2.0/mlflow/registered-models/get?name={other_model}")),
    "register a version of other model": attempt(lambda: rest(
        "POST", "/api/2.0/mlflow/model-versions/create",
        {"name": other_model, "source": f"models:/{own_model}/1"})),
    "move other alias": attempt(lambda: rest(
        "POST", "/api/2.0/mlflow/registered-models/alias",
        {"name": other_model, "alias": "champion", "version": "1"})),
    "delete other alias": attempt(lambda: rest(
        "DELETE", "/api/2.0/mlflow/registered-models/alias",
        {"name": other_model, "alias": "champion"})),
}
print(json.dumps(results))
'''
OWN_CHECKS = ("read own snapshot", "list own prefix", "read own model")
# Refused by the storage's policy, and by MLflow's permissions (403 Forbidden), not by chance.
STORAGE_DENIED, REGISTRY_DENIED = "denied: AccessDenied", "denied: HTTP 403"
DENIED = {
    **dict.fromkeys(("read other snapshot", "list other prefix", "list data bucket",
                     "write other prefix", "overwrite other snapshot",
                     "read other model artifacts in S3", "list artifact bucket"),
                    STORAGE_DENIED),
    **dict.fromkeys(("read other model artifacts through MLflow",
                     "list other model artifacts through MLflow", "read other model",
                     "register a version of other model", "move other alias",
                     "delete other alias"), REGISTRY_DENIED),
}


def run_probe(mlstack: Stack, k8s: client.ApiClient, own: Tenant, other: Tenant) -> dict[str, str]:
    """Run PROBE in `own`'s namespace with the namespace's credentials; what it found."""
    core = client.CoreV1Api(k8s)
    settings = Settings(mlflow_tracking_uri=mlstack.services.mlflow_url,
                        s3_endpoint=mlstack.services.s3_endpoint,
                        data_bucket=mlstack.services.data_bucket)
    probe_env = {"PROBE_DATA_BUCKET": mlstack.services.data_bucket,
                 "PROBE_ARTIFACT_BUCKET": mlstack.services.mlflow_bucket,
                 "PROBE_OWN": own.namespace, "PROBE_OTHER": other.namespace,
                 "PROBE_OWN_SNAPSHOT_KEY": own.snapshot_key,
                 "PROBE_OTHER_SNAPSHOT_KEY": other.snapshot_key,
                 "PROBE_OWN_MODEL": own.model, "PROBE_OTHER_MODEL": other.model,
                 "PROBE_OTHER_ARTIFACTS": other.artifacts, "AWS_DEFAULT_REGION": "us-east-1"}
    pod = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "tenancy-probe", "namespace": own.namespace},
        "spec": {
            "restartPolicy": "Never", "automountServiceAccountToken": False,
            "securityContext": pod_security_context(),
            "containers": [{
                "name": "probe", "image": mlstack.images["trainer"], "imagePullPolicy": "Never",
                "command": ["python", "-c", PROBE],
                "env": [*storage_environment(settings),
                        *({"name": k, "value": v} for k, v in probe_env.items())],
                "securityContext": container_security_context(),
                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
            }],
            "volumes": [{"name": "tmp", "emptyDir": {}}],
        },
    }
    core.create_namespaced_pod(own.namespace, pod)

    def finished() -> str | None:
        phase = core.read_namespaced_pod("tenancy-probe", own.namespace).status.phase
        return phase if phase in ("Succeeded", "Failed") else None

    phase = wait_for("the probe Pod to finish", finished, timeout=180, interval=1)
    log = core.read_namespaced_pod_log("tenancy-probe", own.namespace)
    assert phase == "Succeeded", log
    found: dict[str, str] = json.loads(log.strip().splitlines()[-1])
    return found


def test_a_pod_with_a_namespaces_credentials_reaches_only_that_namespaces_data_and_models(
    mlstack: Stack, k8s: client.ApiClient, tenants: tuple[Tenant, Tenant]
) -> None:
    own, other = tenants
    found = run_probe(mlstack, k8s, own, other)
    assert found == {**dict.fromkeys(OWN_CHECKS, "allowed"), **DENIED}
    # The other namespace's model and alias are untouched.
    admin = MlflowClient(mlstack.services.mlflow_url, mlstack.services.mlflow_url)
    assert [v.version for v in admin.search_model_versions(f"name='{other.model}'")] == ["1"]
    assert admin.get_model_version_by_alias(other.model, "champion").version == "1"


def test_another_namespaces_model_is_refused_before_any_job_or_deployment(
    mlstack: Stack, k8s: client.ApiClient, tenants: tuple[Tenant, Tenant]
) -> None:
    own, other = tenants
    for document in (
        load_example("iris/trainingjob.yaml", {"metadata": {"name": "steal-alias"}, "spec": {
            "registry": {"modelName": other.model}}}),
        load_example("iris/modeldeployment.yaml", {"metadata": {"name": "steal-model"}, "spec": {
            "model": {"name": other.model}}}),
    ):
        code, output = kubectl_apply(mlstack, own.namespace, document)
        assert code == 0, output
    for plural, name, field in (("trainingjobs", "steal-alias", "spec.registry.modelName"),
                                ("modeldeployments", "steal-model", "spec.model")):
        refused = wait_phase(k8s, plural, own.namespace, name, ("Failed",), timeout=90)
        ready = condition(refused, "Ready")
        assert (ready["status"], ready["reason"]) == ("False", "ModelAccessDenied"), ready
        assert ready["message"].startswith(
            f"{field}: registered model {other.model!r} belongs to another namespace"), ready
    assert not jobs_with_label(k8s, own.namespace, "mlcycle.dev/training-job=steal-alias")
    assert not client.AppsV1Api(k8s).list_namespaced_deployment(
        own.namespace, label_selector="mlcycle.dev/model-deployment=steal-model").items


def test_an_s3_source_in_another_namespaces_prefix_is_refused_by_the_storage(
    mlstack: Stack, k8s: client.ApiClient, tenants: tuple[Tenant, Tenant]
) -> None:
    own, other = tenants
    uri = f"s3://{mlstack.services.data_bucket}/{other.snapshot_key}"
    dataset = load_example("iris/dataset.yaml", {"metadata": {"name": "borrowed"}})
    dataset["spec"]["source"] = {"s3": uri}
    code, output = kubectl_apply(mlstack, own.namespace, dataset)
    assert code == 0, output
    refused = wait_phase(k8s, "datasets", own.namespace, "borrowed", ("Failed",), timeout=180)
    ready = condition(refused, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "SourceAccessDenied"), ready
    assert ready["message"].startswith(
        f"spec.source.s3: the object storage refused to read bucket "
        f"{mlstack.services.data_bucket!r} key {other.snapshot_key!r}"), ready
