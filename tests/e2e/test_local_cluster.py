"""The local cluster is a real Kubernetes: Jobs, Deployments, Services, garbage collection,
namespace deletion, CRD validation and `kubectl logs` all go through the real control plane
and the node agent."""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from localkube import build, processes
from localkube.cluster import ClusterState
from localkube.paths import REPO_ROOT
from localkube.testing import wait_for

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


def pid_of(container_id: str) -> int:
    assert container_id.startswith("localkube://"), container_id
    return int(container_id.removeprefix("localkube://"))


def process_alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


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
    """`down` stops what `up` recorded: a process missing here would outlive the cluster."""
    assert set(local_cluster.pids) == {"etcd", "kube-apiserver", "kube-controller-manager",
                                       "kube-scheduler", "node-agent",
                                       "containerd", "kubelet", "kube-proxy"}
    assert all(processes.alive(pid) for pid in local_cluster.pids.values())


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
                "name": "main", "image": "python:3.11",
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


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def test_deployment_replicas_get_their_own_ips_endpoints_and_stop_when_scaled_to_zero(
    local_cluster: ClusterState, k8s: client.ApiClient, namespace: str
) -> None:
    kubectl(local_cluster, "apply", "-n", namespace, "-f", str(EXAMPLES / "web.yaml"))
    core = client.CoreV1Api(k8s)
    pods = wait_for("2 ready web pods",
                    lambda: (p := ready_pods(core, namespace, "app=web")) and len(p) == 2 and p,
                    timeout=120)
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

    pids = [pid_of(pod.status.container_statuses[0].container_id) for pod in pods]
    assert all(process_alive(pid) for pid in pids)
    client.AppsV1Api(k8s).patch_namespaced_deployment_scale(
        "web", namespace, {"spec": {"replicas": 0}})
    wait_for("web pods to be gone",
             lambda: not core.list_namespaced_pod(namespace, label_selector="app=web").items,
             timeout=90)
    wait_for("the web processes to exit", lambda: not any(process_alive(p) for p in pids),
             timeout=30)


def test_deleting_a_deployment_garbage_collects_replicasets_pods_and_processes(
    local_cluster: ClusterState, k8s: client.ApiClient, namespace: str
) -> None:
    kubectl(local_cluster, "apply", "-n", namespace, "-f", str(EXAMPLES / "web.yaml"))
    core = client.CoreV1Api(k8s)
    apps = client.AppsV1Api(k8s)
    pods = wait_for("2 ready web pods",
                    lambda: (p := ready_pods(core, namespace, "app=web")) and len(p) == 2 and p,
                    timeout=120)
    pids = [pid_of(pod.status.container_statuses[0].container_id) for pod in pods]

    apps.delete_namespaced_deployment("web", namespace)  # background propagation: the GC
    wait_for("replicasets to be collected",
             lambda: not apps.list_namespaced_replica_set(namespace).items, timeout=60)
    wait_for("pods to be collected",
             lambda: not core.list_namespaced_pod(namespace).items, timeout=90)
    wait_for("the web processes to exit", lambda: not any(process_alive(p) for p in pids),
             timeout=30)


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


def test_pod_with_an_image_that_has_no_local_runtime_waits_with_a_clear_reason(
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

    state = wait_for("the pod to report an image error", waiting, timeout=60)
    assert "nginx:1.27" in state.message


def test_secret_and_service_account_token_reach_the_pod(
    k8s: client.ApiClient, namespace: str
) -> None:
    """A Pod using the in-cluster client finds the API as in a real cluster."""
    core = client.CoreV1Api(k8s)
    core.create_namespaced_secret(namespace, {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
        "stringData": {"token": "s3cr3t-value"},
    })
    script = (
        "import os, json\n"
        "from kubernetes import client, config\n"
        "config.load_incluster_config()\n"
        "ns = open('/var/run/secrets/kubernetes.io/serviceaccount/namespace').read()\n"
        "status = client.VersionApi().get_code().git_version\n"
        "ok = os.environ['TOKEN'] == open('/etc/creds/token').read()\n"
        "json.dump({'ns': ns, 'version': status, 'secret_ok': ok},"
        " open('/dev/termination-log', 'w'))\n"
    )
    core.create_namespaced_pod(namespace, {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "incluster"},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{
                "name": "main", "image": "python:3.11", "command": ["python", "-c", script],
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
    assert json.loads(terminated.message) == {
        "ns": namespace, "version": "v1.36.3", "secret_ok": True}


def test_no_pod_process_outlives_its_namespace(
    local_cluster: ClusterState, k8s: client.ApiClient
) -> None:
    from localkube.testing import create_namespace, delete_namespace

    namespace = create_namespace(local_cluster.kubeconfig)
    kubectl(local_cluster, "apply", "-n", namespace, "-f", str(EXAMPLES / "web.yaml"))
    core = client.CoreV1Api(k8s)
    pods = wait_for("2 ready web pods",
                    lambda: (p := ready_pods(core, namespace, "app=web")) and len(p) == 2 and p,
                    timeout=120)
    pids = [pid_of(pod.status.container_statuses[0].container_id) for pod in pods]
    delete_namespace(local_cluster.kubeconfig, namespace)
    assert not any(process_alive(p) for p in pids)
    assert os.path.exists(str(local_cluster.kubeconfig))
