"""The local cluster is a real Kubernetes: Jobs, Deployments, Services, garbage collection,
namespace deletion, CRD validation, image errors and `kubectl logs` all go through the real
control plane and a real kubelet running containers on containerd."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from localkube import build, cluster, images, processes
from localkube.cluster import ClusterState
from localkube.paths import REPO_ROOT, local_paths
from localkube.realnode import containerd, node
from localkube.testing import create_namespace, delete_namespace, wait_for

pytestmark = pytest.mark.e2e
EXAMPLES = REPO_ROOT / "examples" / "localkube"
GO_MODULES = REPO_ROOT / "localkube" / "go"


def kubectl(state: ClusterState, *args: str) -> str:
    result = subprocess.run(
        [str(state.kubectl), "--kubeconfig", str(state.kubeconfig), *args],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, f"kubectl {' '.join(args)} failed: {result.stderr}"
    return result.stdout


def job_condition(batch: client.BatchV1Api, namespace: str, name: str) -> str | None:
    job = batch.read_namespaced_job(name, namespace)
    for condition in job.status.conditions or []:
        if condition.type in ("Complete", "Failed") and condition.status == "True":
            return str(condition.type)
    return None


def container_ids(pods: list[Any]) -> set[str]:
    found = {pod.status.container_statuses[0].container_id for pod in pods}
    assert all(cid.startswith("containerd://") for cid in found), found
    return {cid.removeprefix("containerd://") for cid in found}


def running_containers() -> set[str]:
    """The containers whose process runs on the node, as containerd sees them."""
    return set(containerd.running_containers(node.node_dirs(local_paths())))


def go_mod_pin(family: str, module: str) -> str:
    """The version `localkube/go/<family>/go.mod` requires of `module`: the pin itself."""
    for line in (GO_MODULES / family / "go.mod").read_text().splitlines():
        words = line.split("//")[0].split()
        words = words[1:] if words[:1] == ["require"] else words
        if len(words) == 2 and words[0] == module:
            return words[1]
    raise AssertionError(f"localkube/go/{family}/go.mod does not require {module}")


def compiled_module_version(binary: Path) -> str:
    """The version of the module a Go binary's main package was compiled from, read from the
    build information the Go toolchain embeds (not from any version string a build stamps)."""
    info = subprocess.run(["go", "version", "-m", str(binary)], capture_output=True, text=True,
                          timeout=60, check=True).stdout
    versions = [line.split()[2] for line in info.splitlines() if line.split()[:1] == ["mod"]]
    assert len(versions) == 1, info
    return versions[0]


def test_every_component_is_recorded_and_running(local_cluster: ClusterState) -> None:
    """`down` stops what `up` recorded: a process missing here would outlive the cluster. The
    record as it is now (the fault suite restarts the apiserver under a new pid)."""
    recorded = cluster.load_state()
    assert recorded is not None
    assert set(recorded.pids) == {"etcd", "kube-apiserver", "kube-controller-manager",
                                  "kube-scheduler", "provisioner",
                                  "containerd", "kubelet", "kube-proxy"}
    assert all(processes.alive(pid) for pid in recorded.pids.values())


def test_kubectl_and_server_are_built_from_and_report_the_go_mod_pin(
    local_cluster: ClusterState,
) -> None:
    pin = go_mod_pin("kubernetes", "k8s.io/kubernetes")
    for binary in (local_cluster.kubectl, build.binary_path("kube-apiserver")):
        assert compiled_module_version(binary) == pin, binary
    versions = json.loads(kubectl(local_cluster, "version", "-o", "json"))
    assert versions["serverVersion"]["gitVersion"] == pin
    assert versions["clientVersion"]["gitVersion"] == pin


def test_etcd_is_built_from_the_go_mod_pin(local_cluster: ClusterState) -> None:
    pin = go_mod_pin("etcd", "go.etcd.io/etcd/server/v3")
    assert compiled_module_version(build.binary_path("etcd")) == pin


def test_python_job_completes_with_its_termination_message_and_logs(
    local_cluster: ClusterState, k8s: client.ApiClient, namespace: str
) -> None:
    kubectl(local_cluster, "apply", "-n", namespace, "-f", str(EXAMPLES / "job.yaml"))
    batch = client.BatchV1Api(k8s)
    condition = wait_for("job hello to finish", lambda: job_condition(batch, namespace, "hello"),
                         timeout=120)
    assert condition == "Complete"

    pods = client.CoreV1Api(k8s).list_namespaced_pod(namespace, label_selector="job-name=hello")
    [pod] = pods.items
    assert pod.status.phase == "Succeeded"
    terminated = pod.status.container_statuses[0].state.terminated
    assert terminated.exit_code == 0 and terminated.reason == "Completed"
    assert json.loads(terminated.message) == {
        "greeting": "hello, local cluster", "pod": pod.metadata.name
    }
    logs = kubectl(local_cluster, "logs", "-n", namespace, "job/hello")
    assert f"hello from pod {pod.metadata.name} at {pod.status.pod_ip}" in logs


def test_failing_job_ends_failed_after_its_retries(
    k8s: client.ApiClient, namespace: str
) -> None:
    batch = client.BatchV1Api(k8s)
    job: dict[str, Any] = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "fails"},
        "spec": {
            "backoffLimit": 1,
            "template": {"spec": {"restartPolicy": "Never", "containers": [{
                "name": "main", "image": images.PYTHON_IMAGE, "imagePullPolicy": "Never",
                "command": ["python", "-c", "import sys; sys.exit(1)"],
            }]}},
        },
    }
    batch.create_namespaced_job(namespace, job)
    condition = wait_for("job fails to give up", lambda: job_condition(batch, namespace, "fails"),
                         timeout=180)
    assert condition == "Failed"
    status = batch.read_namespaced_job("fails", namespace).status
    assert status.failed == 2  # the first try and one retry
    pods = client.CoreV1Api(k8s).list_namespaced_pod(namespace, label_selector="job-name=fails")
    for pod in pods.items:
        assert pod.status.container_statuses[0].state.terminated.exit_code == 1


def ready_pods(core: client.CoreV1Api, namespace: str, selector: str) -> list[Any]:
    pods = core.list_namespaced_pod(namespace, label_selector=selector).items
    return [
        pod for pod in pods
        if pod.metadata.deletion_timestamp is None and any(
            c.type == "Ready" and c.status == "True" for c in pod.status.conditions or []
        )
    ]


def two_ready_web_pods(state: ClusterState, core: client.CoreV1Api, namespace: str) -> list[Any]:
    kubectl(state, "apply", "-n", namespace, "-f", str(EXAMPLES / "web.yaml"))

    def two_ready() -> list[Any] | None:
        pods = ready_pods(core, namespace, "app=web")
        return pods if len(pods) == 2 else None

    return wait_for("2 ready web pods", two_ready, timeout=120)


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def test_deployment_replicas_get_their_own_ips_endpoints_and_stop_when_scaled_to_zero(
    local_cluster: ClusterState, k8s: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(k8s)
    pods = two_ready_web_pods(local_cluster, core, namespace)
    ips = {pod.status.pod_ip for pod in pods}
    assert len(ips) == 2
    assert all(not ip.startswith("127.") for ip in ips)
    for ip in ips:
        assert "served from a pod" in http_get(f"http://{ip}:8080/index.html")

    discovery = client.DiscoveryV1Api(k8s)

    def endpoint_addresses() -> set[str] | None:
        slices = discovery.list_namespaced_endpoint_slice(
            namespace, label_selector="kubernetes.io/service-name=web").items
        found = {a for s in slices for e in s.endpoints or [] for a in e.addresses
                 if e.conditions.ready}
        return found if found == ips else None

    wait_for("the EndpointSlice to list both pods", endpoint_addresses, timeout=60)

    containers = container_ids(pods)
    assert containers <= running_containers()
    client.AppsV1Api(k8s).patch_namespaced_deployment_scale(
        "web", namespace, {"spec": {"replicas": 0}})
    wait_for("web pods to be gone",
             lambda: not core.list_namespaced_pod(namespace, label_selector="app=web").items,
             timeout=90)
    wait_for("the web containers to stop",
             lambda: not containers & running_containers(), timeout=30)


def test_deleting_a_deployment_garbage_collects_replicasets_pods_and_containers(
    local_cluster: ClusterState, k8s: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(k8s)
    apps = client.AppsV1Api(k8s)
    containers = container_ids(two_ready_web_pods(local_cluster, core, namespace))

    apps.delete_namespaced_deployment("web", namespace)  # background propagation: the GC
    wait_for("replicasets to be collected",
             lambda: not apps.list_namespaced_replica_set(namespace).items, timeout=60)
    wait_for("pods to be collected",
             lambda: not core.list_namespaced_pod(namespace).items, timeout=90)
    wait_for("the web containers to stop",
             lambda: not containers & running_containers(), timeout=30)


def test_crd_schema_rejects_an_invalid_object_at_create_time(k8s: client.ApiClient,
                                                              namespace: str) -> None:
    extensions = client.ApiextensionsV1Api(k8s)
    name = "widgets.test.localkube.dev"
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": name},
        "spec": {
            "group": "test.localkube.dev",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
            "scope": "Namespaced",
            "versions": [{
                "name": "v1", "served": True, "storage": True,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {"spec": {
                    "type": "object", "required": ["size"],
                    "properties": {"size": {"type": "integer", "minimum": 1, "maximum": 10}},
                }}}},
            }],
        },
    }
    try:
        extensions.delete_custom_resource_definition(name)
    except ApiException as error:
        assert error.status == 404
    extensions.create_custom_resource_definition(crd)
    try:
        def established() -> bool:
            status = extensions.read_custom_resource_definition(name).status
            return any(c.type == "Established" and c.status == "True"
                       for c in status.conditions or [])

        wait_for("the CRD to be established", established, timeout=30)
        objects = client.CustomObjectsApi(k8s)
        group, version, plural = "test.localkube.dev", "v1", "widgets"
        objects.create_namespaced_custom_object(group, version, namespace, plural, {
            "apiVersion": f"{group}/{version}", "kind": "Widget",
            "metadata": {"name": "ok"}, "spec": {"size": 3}})
        with pytest.raises(ApiException) as rejected:
            objects.create_namespaced_custom_object(group, version, namespace, plural, {
                "apiVersion": f"{group}/{version}", "kind": "Widget",
                "metadata": {"name": "too-big"}, "spec": {"size": 11}})
        assert rejected.value.status == 422
        assert "spec.size" in str(rejected.value.body)
    finally:
        extensions.delete_custom_resource_definition(name)


def test_pod_with_an_image_that_is_not_here_waits_with_a_clear_reason(
    k8s: client.ApiClient, namespace: str
) -> None:
    core = client.CoreV1Api(k8s)
    core.create_namespaced_pod(namespace, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nginx"},
        "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"}]},
    })

    def waiting() -> Any:
        statuses = core.read_namespaced_pod("nginx", namespace).status.container_statuses
        state = statuses[0].state.waiting if statuses else None
        return state if state and state.reason in ("ErrImagePull", "ImagePullBackOff") else None

    state = wait_for("the pod to report an image error", waiting, timeout=120)
    assert "nginx:1.27" in state.message


def test_secret_and_service_account_token_reach_the_pod(
    k8s: client.ApiClient, namespace: str
) -> None:
    """A Pod configured as in-cluster clients are (the service account's token and CA, and
    KUBERNETES_SERVICE_HOST/PORT: the `kubernetes` Service, through kube-proxy) reaches the
    API as in a real cluster, and reads a Secret from its environment and a volume."""
    core = client.CoreV1Api(k8s)
    core.create_namespaced_secret(namespace, {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
        "stringData": {"token": "s3cr3t-value"},
    })
    script = (
        "import json, os, ssl, urllib.request\n"
        "account = '/var/run/secrets/kubernetes.io/serviceaccount'\n"
        "ns = open(f'{account}/namespace').read()\n"
        "host = os.environ['KUBERNETES_SERVICE_HOST']\n"
        "port = os.environ['KUBERNETES_SERVICE_PORT']\n"
        "request = urllib.request.Request(f'https://{host}:{port}/version', headers={\n"
        "    'Authorization': 'Bearer ' + open(f'{account}/token').read()})\n"
        "context = ssl.create_default_context(cafile=f'{account}/ca.crt')\n"
        "version = json.load(urllib.request.urlopen(request, context=context))['gitVersion']\n"
        "ok = os.environ['TOKEN'] == open('/etc/creds/token').read()\n"
        "json.dump({'ns': ns, 'version': version, 'secret_ok': ok, 'host': host},"
        " open('/dev/termination-log', 'w'))\n"
    )
    core.create_namespaced_pod(namespace, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "incluster"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{
                "name": "main", "image": images.PYTHON_IMAGE, "imagePullPolicy": "Never",
                "command": ["python", "-c", script],
                "env": [{"name": "TOKEN", "valueFrom": {
                    "secretKeyRef": {"name": "creds", "key": "token"}}}],
                "volumeMounts": [{"name": "creds", "mountPath": "/etc/creds",
                                  "readOnly": True}],
            }],
            "volumes": [{"name": "creds", "secret": {"secretName": "creds"}}],
        },
    })

    def finished() -> Any:
        pod = core.read_namespaced_pod("incluster", namespace)
        return pod if pod.status.phase in ("Succeeded", "Failed") else None

    pod = wait_for("the in-cluster pod to finish", finished, timeout=90)
    terminated = pod.status.container_statuses[0].state.terminated
    assert pod.status.phase == "Succeeded", terminated.message
    kubernetes = core.read_namespaced_service("kubernetes", "default").spec.cluster_ip
    assert json.loads(terminated.message) == {
        "ns": namespace, "version": "v1.36.3", "secret_ok": True, "host": kubernetes}


def test_no_container_outlives_its_namespace(
    local_cluster: ClusterState, k8s: client.ApiClient
) -> None:
    namespace = create_namespace(local_cluster.kubeconfig)
    core = client.CoreV1Api(k8s)
    containers = container_ids(two_ready_web_pods(local_cluster, core, namespace))
    delete_namespace(local_cluster.kubeconfig, namespace)
    assert not containers & running_containers()
