"""The Helm chart on the real local cluster.

First every scenario's rendered manifests go through the apiserver's server-side dry run.
Then one release is installed into a namespace that enforces the Pod Security Standard
`restricted`, serving a second, equally restricted workload namespace, and the tests run
in order against it: the pods (operator x2, MLflow, MinIO) run on the node, from the images
built here (`localkube.images`); the iris
examples go from data to predictions through that installation alone; the active operator
replica is killed during a training run; a run under concurrencyPolicy Replace is replaced
(the role's `delete` on Jobs); `helm upgrade` to new values and a new operator
version keeps runs, models and artifacts; `helm uninstall` keeps the CRDs, the volumes and
the credentials, and a reinstall finds everything again.

The harness's own operator (a local process with admin rights, serving every namespace)
is stopped while the release is installed and started again afterwards, so every step of
the flow is the chart's operator acting with the chart's ServiceAccount and nothing else.
Pods reach MLflow and MinIO by their Services' DNS names (the chart's defaults); the tests
reach them at the Services' ClusterIPs.
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from mlflow import MlflowClient

from localkube import processes, stack, testing
from localkube.cluster import ClusterState
from localkube.images import CHART_IMAGES
from localkube.paths import local_paths
from localkube.realnode import containerd, node
from localkube.realnode.config import NODE_NAME
from localkube.release import CHART, Helm, local_image_values, service_url
from localkube.stack import Stack
from localkube.testing import wait_for
from mlcycle import crdgen
from tests.e2e.chart_support import hand_crds_back
from tests.e2e.mlhelpers import (
    condition,
    jobs_with_label,
    kubectl_apply,
    load_example,
    read,
    wait_phase,
)
from tests.e2e.test_replace import replace_a_running_run

pytestmark = pytest.mark.e2e
RELEASE = "mlc"
FULLNAME = f"{RELEASE}-mlcycle"
OPERATOR_LABELS = "app.kubernetes.io/instance=mlc,app.kubernetes.io/component=operator"
RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted",
              "pod-security.kubernetes.io/enforce-version": "latest"}
SCENARIOS = sorted((CHART / "ci").glob("*.yaml"))


def restricted_namespace(k8s: client.ApiClient, kubeconfig: Path, prefix: str) -> str:
    name = testing.create_namespace(kubeconfig, prefix=prefix)
    client.CoreV1Api(k8s).patch_namespace(name, {"metadata": {"labels": RESTRICTED}})
    return name


# --- the stack's own release ------------------------------------------------------------------


def test_the_stack_s_minio_mlflow_and_operator_are_the_chart_s_pods(
        mlstack: Stack, k8s: client.ApiClient) -> None:
    """`make up` installs MinIO, MLflow and the operator with the chart from the images built
    here; the stack reaches MinIO and MLflow at their Services, with the credentials of the
    chart's Secrets."""
    state = mlstack.services
    if state.release_namespace is None:
        pytest.skip("LOCALKUBE_SERVICES=process: MinIO and MLflow run as local processes")
    namespace = state.release_namespace
    built = node.load_images(mlstack.paths, CHART_IMAGES)
    core = client.CoreV1Api(k8s)
    components = [("minio", built["minio"]), ("mlflow", built["operator"])]
    if stack.operator_from_chart():
        assert stack.operator_pid(mlstack.paths) is None  # no local process besides
        components.append(("operator", built["operator"]))
    for component, image in components:
        pods = core.list_namespaced_pod(namespace, label_selector=(
            f"app.kubernetes.io/instance={namespace},app.kubernetes.io/component={component}"
        )).items
        assert [p.status.phase for p in pods] == ["Running"], component
        container = pods[0].spec.containers[0]
        assert container.image == image and container.image_pull_policy == "Never"
        assert container.security_context.read_only_root_filesystem is True
        assert pods[0].spec.security_context.run_as_non_root is True
    assert state.s3_endpoint == service_url(k8s, namespace, f"{namespace}-minio", "s3")
    assert state.mlflow_url == service_url(k8s, namespace, f"{namespace}-mlflow", "http")
    storage = boto3.client("s3", endpoint_url=state.s3_endpoint, region_name="us-east-1",
                           aws_access_key_id=mlstack.credentials.access_key,
                           aws_secret_access_key=mlstack.credentials.secret_key)
    buckets = {b["Name"] for b in storage.list_buckets()["Buckets"]}
    assert {state.mlflow_bucket, state.data_bucket} <= buckets  # made by the chart's Job
    assert MlflowClient(state.mlflow_url, state.mlflow_url).search_experiments()  # as admin


# --- rendering checked by the apiserver ------------------------------------------------------


@pytest.mark.parametrize("scenario", [None, *SCENARIOS], ids=lambda s: s.stem if s else "default")
def test_rendered_chart_passes_a_server_side_dry_run(
    local_cluster: ClusterState, namespace: str, tmp_path: Path, scenario: Path | None
) -> None:
    """Every object of every scenario is valid for the real apiserver (schemas, strict field
    validation, admission); served namespaces are the test's own, which exist."""
    helm = Helm.create(local_cluster.kubeconfig, tmp_path)
    values = ["--set-json", f'operator.watchNamespaces=["{namespace}"]']
    if scenario is not None:
        values = ["--values", str(scenario), *values]
    rendered = helm.run("template", RELEASE, str(CHART), "--namespace", namespace,
                        *values).stdout
    applied = subprocess.run(
        [str(local_cluster.kubectl), "--kubeconfig", str(local_cluster.kubeconfig),
         "apply", "--dry-run=server", "--validate=strict", "--namespace", namespace, "-f", "-"],
        input=rendered, capture_output=True, text=True, timeout=120)
    assert applied.returncode == 0, applied.stderr
    kinds = {line.split("/")[0] for line in applied.stdout.splitlines()}
    assert "deployment.apps" in kinds


class AsChartAdmin:
    """An MlflowClient whose calls go as the release's MLflow admin: MLflow reads the
    credentials from the environment, which holds the local stack's admin otherwise."""

    def __init__(self, registry: MlflowClient, k8s: client.ApiClient, namespace: str) -> None:
        secret = client.CoreV1Api(k8s).read_namespaced_secret(f"{FULLNAME}-mlflow-admin",
                                                               namespace)
        self._registry = registry
        self._credentials = {f"MLFLOW_TRACKING_{variable}": base64.b64decode(
            secret.data[key]).decode() for variable, key in (("USERNAME", "username"),
                                                             ("PASSWORD", "password"))}

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._registry, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            with pytest.MonkeyPatch.context() as environment:
                for variable, value in self._credentials.items():
                    environment.setenv(variable, value)
                return method(*args, **kwargs)

        return call


# --- one installed release -------------------------------------------------------------------


@dataclass
class Release:
    helm: Helm
    namespace: str
    workload: str
    values: list[str]
    k8s: client.ApiClient
    images: dict[str, str]
    facts: dict[str, Any] = field(default_factory=dict)  # what earlier steps left to check

    def install(self, *extra: str) -> None:
        self.helm.run("upgrade", "--install", RELEASE, str(CHART), "--namespace", self.namespace,
                      "--take-ownership", "--wait", "--timeout", "6m", *self.values, *extra)

    @property
    def registry(self) -> Any:
        url = service_url(self.k8s, self.namespace, f"{FULLNAME}-mlflow", "http")
        return AsChartAdmin(MlflowClient(tracking_uri=url, registry_uri=url), self.k8s,
                            self.namespace)

    def storage(self) -> Any:
        secret = client.CoreV1Api(self.k8s).read_namespaced_secret(f"{FULLNAME}-s3",
                                                                   self.namespace)
        key = {k: base64.b64decode(v).decode() for k, v in secret.data.items()}
        endpoint = service_url(self.k8s, self.namespace, f"{FULLNAME}-minio", "s3")
        return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                            aws_access_key_id=key["accessKey"],
                            aws_secret_access_key=key["secretKey"])

    def pods(self, selector: str) -> list[Any]:
        found = client.CoreV1Api(self.k8s).list_namespaced_pod(self.namespace,
                                                               label_selector=selector).items
        return [p for p in found if p.metadata.deletion_timestamp is None]


@pytest.fixture(scope="module")
def release(mlstack: Stack, k8s: client.ApiClient,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Release]:
    kubeconfig = mlstack.cluster.kubeconfig
    namespace = restricted_namespace(k8s, kubeconfig, "chart")
    workload = restricted_namespace(k8s, kubeconfig, "chartwl")
    built = {**mlstack.images, **node.load_images(mlstack.paths, CHART_IMAGES)}
    values = [
        "--set-json", f'operator.watchNamespaces=["{workload}"]',
        "--set", "operator.peering.lifetimeSeconds=20",
        *local_image_values(built),
    ]
    helm = Helm.create(kubeconfig, tmp_path_factory.mktemp("helm"))
    with chart_only(mlstack, k8s, helm, namespace, workload):
        installed = Release(helm, namespace, workload, values=values, k8s=k8s, images=built)
        started = time.monotonic()
        installed.install()
        installed.facts["install_seconds"] = time.monotonic() - started
        yield installed


@contextlib.contextmanager
def chart_only(mlstack: Stack, k8s: client.ApiClient, helm: Helm, namespace: str,
               workload: str) -> Iterator[contextlib.ExitStack]:
    """The harness's own operator stopped, so that only the release's acts; on the way out
    (every step runs, last registered first, so a caller's own steps come before these):
    the workload namespace deleted, the release uninstalled, its namespace deleted with the
    claims it kept, the CRDs handed back to the harness and its operator started again."""
    kubeconfig = mlstack.cluster.kubeconfig
    harness_operator = stack.operator_running(mlstack.paths)
    stack.pause_operator(mlstack.paths)
    with contextlib.ExitStack() as cleanup:
        if harness_operator:
            cleanup.callback(stack.resume_operator, mlstack)
        cleanup.callback(hand_crds_back, k8s, [crd["metadata"]["name"]
                                               for crd in crdgen.build_crds()])
        cleanup.callback(testing.delete_namespace, kubeconfig, namespace, until_gone=False)
        cleanup.callback(helm.run, "uninstall", RELEASE, "--namespace", namespace, "--wait",
                         check=False)
        # First, while the chart's operator runs and releases kopf's finalizers.
        cleanup.callback(delete_workload_namespace, k8s, kubeconfig, workload)
        yield cleanup


def delete_workload_namespace(k8s: client.ApiClient, kubeconfig: Path, name: str) -> None:
    """Delete it; if no operator is left to release kopf's finalizers (a test failed with
    the release uninstalled), release them here so that the namespace goes."""
    try:
        testing.delete_namespace(kubeconfig, name, timeout=60)
        return
    except TimeoutError:
        pass
    api = client.CustomObjectsApi(k8s)
    for plural in ("modeldeployments", "trainingjobs", "datasets"):
        for item in api.list_namespaced_custom_object("mlcycle.dev", "v1alpha1", name,
                                                      plural)["items"]:
            api.patch_namespaced_custom_object("mlcycle.dev", "v1alpha1", name, plural,
                                               item["metadata"]["name"],
                                               {"metadata": {"finalizers": None}})
    testing.delete_namespace(kubeconfig, name)


def test_operator_mlflow_and_minio_run_as_restricted_pods_on_the_node(
    release: Release, mlstack: Stack
) -> None:
    assert release.facts["install_seconds"] < 360
    components = {"operator": 2, "mlflow": 1, "minio": 1}
    for component, replicas in components.items():
        pods = release.pods(f"app.kubernetes.io/instance={RELEASE},"
                            f"app.kubernetes.io/component={component}")
        assert len(pods) == replicas, component
        for pod in pods:
            assert pod.status.phase == "Running" and pod.spec.node_name == NODE_NAME
            assert pod.spec.security_context.run_as_non_root is True
            container = pod.spec.containers[0]
            assert container.security_context.read_only_root_filesystem is True
            assert container.resources.requests and container.resources.limits
    operator_pod = release.pods(OPERATOR_LABELS)[0]
    assert operator_pod.spec.service_account_name == f"{FULLNAME}-operator"
    claims = client.CoreV1Api(release.k8s).list_namespaced_persistent_volume_claim(
        release.namespace).items
    assert sorted(c.metadata.name for c in claims) == [f"{FULLNAME}-minio", f"{FULLNAME}-mlflow"]
    assert all(c.status.phase == "Bound" for c in claims)

    # The admission that passed these pods is real: a privileged pod is refused.
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "root"},
           "spec": {"containers": [{"name": "main", "image": "python:3.11",
                                    "securityContext": {"privileged": True}}]}}
    code, output = kubectl_apply(mlstack, release.namespace, pod)
    assert code != 0 and 'violates PodSecurity "restricted:latest"' in output


def test_iris_examples_train_register_and_serve_through_the_installation(
    release: Release, mlstack: Stack
) -> None:
    """examples/iris as they are: the chart's operator with the chart's RBAC does it all."""
    k8s, workload = release.k8s, release.workload
    for example in ("dataset", "trainingjob", "modeldeployment"):
        code, output = kubectl_apply(mlstack, workload, load_example(f"iris/{example}.yaml"))
        assert code == 0, output
    dataset = wait_phase(k8s, "datasets", workload, "iris", ("Ready", "Failed"))
    assert dataset["status"]["phase"] == "Ready", dataset["status"]
    trained = wait_phase(k8s, "trainingjobs", workload, "iris-rf", ("Succeeded", "Failed"))
    assert trained["status"]["phase"] == "Succeeded", trained["status"]
    assert trained["status"]["model"]["name"] == "iris-classifier"
    assert trained["status"]["mlflow"]["runId"]

    def serving() -> dict[str, Any] | None:
        found = read(k8s, "modeldeployments", workload, "iris")
        status = found.get("status") or {}
        ready = status.get("conditions") and condition(found, "Ready")["status"] == "True"
        return found if ready and status.get("readyReplicas") == 2 else None

    wait_for("the iris ModelDeployment to serve on 2 replicas", serving, timeout=300, interval=1)
    pods = client.CoreV1Api(k8s).list_namespaced_pod(
        workload, label_selector="mlcycle.dev/model-deployment=iris").items
    row = {"sepal length (cm)": 6.3, "sepal width (cm)": 3.3, "petal length (cm)": 6.0,
           "petal width (cm)": 2.5}
    for pod in pods:
        response = httpx.post(f"http://{pod.status.pod_ip}:8080/invocations",
                              json={"dataframe_records": [row]}, timeout=30)
        assert response.status_code == 200, response.text
        assert response.json()["predictions"] == [2]  # virginica

    run_id = trained["status"]["mlflow"]["runId"]
    assert release.registry.get_run(run_id).info.status == "FINISHED"
    assert release.registry.get_model_version_by_alias("iris-classifier", "champion").version == "1"
    artifacts = release.storage().list_objects_v2(Bucket="mlflow").get("Contents", [])
    assert any(obj["Key"].endswith("MLmodel") for obj in artifacts)
    release.facts.update(run_id=run_id, snapshot=dataset["status"]["snapshotURI"],
                         artifacts=sorted(obj["Key"] for obj in artifacts))

    # Everything above was done by the chart's operator with the chart's Role only.
    assert not stack.operator_running(mlstack.paths)
    for pod in release.pods(OPERATOR_LABELS):
        log = client.CoreV1Api(k8s).read_namespaced_pod_log(pod.metadata.name, release.namespace)
        assert "Forbidden" not in log and " 403" not in log, log[-3000:]
    # It may read back the one Secret it writes in a workload namespace, and no other.
    reads = {name: client.AuthorizationV1Api(k8s).create_subject_access_review({
        "spec": {"user": f"system:serviceaccount:{release.namespace}:{FULLNAME}-operator",
                 "resourceAttributes": {"namespace": workload, "verb": "get",
                                        "resource": "secrets", "name": name}}}).status.allowed
        for name in ("mlcycle-tenant", "another-teams-secret", "")}
    assert reads == {"mlcycle-tenant": True, "another-teams-secret": False, "": False}


def active_replica(release: Release) -> str:
    """The live peer with the highest priority in the workload namespace's KopfPeering."""
    peering = client.CustomObjectsApi(release.k8s).get_namespaced_custom_object(
        "kopf.dev", "v1", release.workload, "kopfpeerings", FULLNAME)
    live = {name: peer for name, peer in (peering.get("status") or {}).items()
            if peer and peer.get("lifetime", 0) > 0}
    return max(live, key=lambda name: live[name]["priority"])


def kill_container(release: Release, pod_name: str) -> None:
    """SIGKILL the container's main process, as a crash or the OOM killer would: no goodbye
    to the peering object; the kubelet restarts the container."""
    pod = client.CoreV1Api(release.k8s).read_namespaced_pod(pod_name, release.namespace)
    pid = node.container_pid(local_paths(), pod)
    os.kill(pid, signal.SIGKILL)
    wait_for(f"process {pid} to die", lambda: not processes.alive(pid), timeout=10)


HA_TRAINING = "iris-ha"


def start_slow_training(release: Release, mlstack: Stack, model_name: str) -> None:
    """The iris TrainingJob `iris-ha` with 400 trees, in the workload namespace, once Running:
    a run in flight for a failover to hand over."""
    slow = load_example("iris/trainingjob.yaml", {
        "metadata": {"name": HA_TRAINING},
        "spec": {"hyperparameters": {"n_estimators": 400, "random_state": 0},
                 "registry": {"modelName": model_name}}})
    code, output = kubectl_apply(mlstack, release.workload, slow)
    assert code == 0, output
    wait_phase(release.k8s, "trainingjobs", release.workload, HA_TRAINING, ("Running",),
               timeout=300)


def assert_trained_once(release: Release, model_name: str, standby: str) -> None:
    """The run in flight ended Succeeded with one Job and one model version, and `standby`
    resumed the operator's work."""
    k8s, workload = release.k8s, release.workload
    trained = wait_phase(k8s, "trainingjobs", workload, HA_TRAINING, ("Succeeded", "Failed"))
    assert trained["status"]["phase"] == "Succeeded", trained["status"]
    assert len(jobs_with_label(k8s, workload, f"mlcycle.dev/training-job={HA_TRAINING}")) == 1
    versions = release.registry.search_model_versions(f"name='{model_name}'")
    assert [v.version for v in versions] == ["1"]
    assert trained["status"]["model"]["version"] == 1
    log = client.CoreV1Api(k8s).read_namespaced_pod_log(standby, release.namespace)
    assert "Resuming operations" in log


def test_killing_the_active_replica_during_training_hands_over_without_duplicates(
    release: Release, mlstack: Stack
) -> None:
    start_slow_training(release, mlstack, "iris-ha")
    leader = active_replica(release)
    standby = next(p.metadata.name for p in release.pods(OPERATOR_LABELS)
                   if p.metadata.name != leader)
    kill_container(release, leader)
    # The standby took over; the restarted leader (younger now) waits as the new standby.
    wait_for("the standby to lead", lambda: active_replica(release) == standby, timeout=60)
    assert_trained_once(release, "iris-ha", standby)


def test_the_chart_s_operator_replaces_a_running_run_deleting_its_job(
    release: Release, mlstack: Stack
) -> None:
    """concurrencyPolicy Replace with the chart's RBAC: its `delete` on Jobs is enough."""
    replace_a_running_run(mlstack, release.k8s, release.workload, "iris-replace")


def test_helm_upgrade_with_new_values_and_operator_version_keeps_runs_models_and_data(
    release: Release,
) -> None:
    before = {p.metadata.uid for p in release.pods(f"app.kubernetes.io/instance={RELEASE}")}
    repository = release.images["operator"].rsplit(":", 1)[0]
    containerd.tag(node.node_dirs(local_paths()), release.images["operator"], f"{repository}:0.1.1")
    release.install("--set", "image.tag=0.1.1", "--set", "mlflow.resources.requests.cpu=150m",
                    "--set", "minio.resources.requests.cpu=150m", "--set", "mlflow.workers=1")
    pods = release.pods(f"app.kubernetes.io/instance={RELEASE}")
    assert not before & {p.metadata.uid for p in pods}, "every pod was replaced"
    operators = release.pods(OPERATOR_LABELS)
    assert {p.spec.containers[0].image for p in operators} == {f"{repository}:0.1.1"}
    assert_data_kept(release)


def assert_data_kept(release: Release) -> None:
    registry = release.registry
    assert registry.get_run(release.facts["run_id"]).info.status == "FINISHED"
    assert registry.get_model_version_by_alias("iris-classifier", "champion").version == "1"
    assert [v.version for v in registry.search_model_versions("name='iris-ha'")] == ["1"]
    s3 = release.storage()
    kept = sorted(obj["Key"] for obj in s3.list_objects_v2(Bucket="mlflow").get("Contents", []))
    assert set(release.facts["artifacts"]) <= set(kept)
    bucket, key = release.facts["snapshot"].removeprefix("s3://").split("/", 1)
    assert s3.head_object(Bucket=bucket, Key=key)["ContentLength"] > 0


def test_helm_uninstall_keeps_crds_volumes_and_credentials_and_a_reinstall_finds_the_data(
    release: Release, mlstack: Stack
) -> None:
    out = release.helm.run("uninstall", RELEASE, "--namespace", release.namespace,
                           "--wait").stdout
    assert "kept due to the resource policy" in out
    core = client.CoreV1Api(release.k8s)
    wait_for("the release's pods to go", lambda: not release.pods(
        f"app.kubernetes.io/instance={RELEASE}"), timeout=120)
    extensions = client.ApiextensionsV1Api(release.k8s)
    for crd in ("datasets.mlcycle.dev", "trainingjobs.mlcycle.dev",
                "modeldeployments.mlcycle.dev", "kopfpeerings.kopf.dev"):
        kept = extensions.read_custom_resource_definition(crd)
        assert kept.metadata.annotations["helm.sh/resource-policy"] == "keep"
    assert read(release.k8s, "trainingjobs", release.workload, "iris-rf")["status"]["phase"] \
        == "Succeeded"
    claims = core.list_namespaced_persistent_volume_claim(release.namespace).items
    assert {c.metadata.name: c.status.phase for c in claims} == {
        f"{FULLNAME}-minio": "Bound", f"{FULLNAME}-mlflow": "Bound"}
    for claim in claims:
        volume = core.read_persistent_volume(claim.spec.volume_name)
        assert any(Path(volume.spec.host_path.path).iterdir()), claim.metadata.name
    core.read_namespaced_secret(f"{FULLNAME}-s3", release.namespace)
    core.read_namespaced_secret("mlcycle-tenant", release.workload)  # the operator wrote it
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_service_account(f"{FULLNAME}-operator", release.namespace)
    assert gone.value.status == 404

    release.install()
    assert_data_kept(release)


def test_values_schema_rejects_unknown_keys_at_install(release: Release, tmp_path: Path) -> None:
    values = tmp_path / "typo.yaml"
    values.write_text(yaml.safe_dump({"operator": {"replica": 3}}))
    failed = release.helm.run("upgrade", RELEASE, str(CHART), "--namespace", release.namespace,
                              "--reuse-values", "--values", str(values), check=False)
    assert failed.returncode != 0
    assert "replica" in failed.stderr and "additional properties" in failed.stderr.lower()
