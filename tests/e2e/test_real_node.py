"""The node: a kubelet on containerd and runc runs the images built here from our
Dockerfiles, enforces what a cluster enforces (read-only root filesystems, memory limits,
the `restricted` security context), and Services route through kube-proxy and CoreDNS."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from kubernetes import client

from localkube.cluster import ClusterState
from localkube.paths import REPO_ROOT, local_paths
from localkube.realnode import config, dns, node
from localkube.testing import wait_for

pytestmark = pytest.mark.e2e
RUNTIME_LOCK = REPO_ROOT / "requirements" / "runtime.lock"


@pytest.fixture(scope="session")
def real_node(local_cluster: ClusterState) -> ClusterState:
    """The cluster, once its DNS answers."""
    node.wait_for_dns(local_cluster.kubeconfig)
    return local_cluster


@pytest.fixture(scope="session")
def image(real_node: ClusterState) -> dict[str, str]:
    """The trainer and serving images, built from their Dockerfiles and loaded into the node."""
    return node.load_images(local_paths(), ("trainer", "serving"))


@pytest.fixture
def core(k8s: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(k8s)


def kubectl(state: ClusterState, *args: str) -> str:
    result = subprocess.run(
        [str(state.kubectl), "--kubeconfig", str(state.kubeconfig), *args],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, f"kubectl {' '.join(args)} failed: {result.stderr}"
    return result.stdout


def restricted() -> dict[str, Any]:
    return dns.restricted_security_context(10001)


def pod(name: str, image: str, command: list[str], *, memory: str = "256Mi",
        labels: dict[str, str] | None = None, port: int | None = None) -> dict[str, Any]:
    """A Pod for the real node: restricted, with a writable emptyDir at /tmp (HOME)."""
    container: dict[str, Any] = {
        "name": "main", "image": image, "imagePullPolicy": "Never", "command": command,
        "securityContext": restricted(),
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "resources": {"limits": {"memory": memory, "cpu": "1"},
                      "requests": {"memory": "32Mi", "cpu": "10m"}},
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    if port:
        container["ports"] = [{"containerPort": port}]
        container["readinessProbe"] = {"tcpSocket": {"port": port}, "periodSeconds": 1}
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "enableServiceLinks": False,
            "containers": [container],
            "volumes": [{"name": "tmp", "emptyDir": {}}],
        },
    }


def create(core: client.CoreV1Api, namespace: str, manifest: dict[str, Any]) -> None:
    core.create_namespaced_pod(namespace, manifest)


def finished(core: client.CoreV1Api, namespace: str, name: str, timeout: float = 120) -> Any:
    """The Pod once terminal, with its container's terminated state."""

    def terminal() -> Any:
        found = core.read_namespaced_pod(name, namespace)
        return found if found.status.phase in ("Succeeded", "Failed") else None

    found = wait_for(f"pod {namespace}/{name} to finish", terminal, timeout=timeout)
    assert found.spec.node_name == config.NODE_NAME
    return found


def running(core: client.CoreV1Api, namespace: str, name: str, timeout: float = 120) -> Any:
    def ready() -> Any:
        found = core.read_namespaced_pod(name, namespace)
        assert found.status.phase not in ("Failed", "Succeeded"), found.status
        conditions = {c.type: c.status for c in found.status.conditions or []}
        return found if conditions.get("Ready") == "True" else None

    return wait_for(f"pod {namespace}/{name} to be Ready", ready, timeout=timeout)


def sleeper(name: str, image: str) -> dict[str, Any]:
    return pod(name, image, ["python", "-c", "import time; time.sleep(3600)"])


def canonical(requirement: str) -> str:
    name, version = requirement.split("==")
    return f"{re.sub(r'[-_.]+', '-', name).lower()}=={version.strip()}"


def locked_requirements() -> set[str]:
    pins = set()
    for line in RUNTIME_LOCK.read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            pins.add(canonical(line.split(";")[0].split()[0]))
    return pins


def test_the_only_node_is_a_ready_untainted_kubelet_on_containerd(
    real_node: ClusterState, core: client.CoreV1Api
) -> None:
    [found] = core.list_node().items
    assert found.metadata.name == config.NODE_NAME
    conditions = {c.type: c.status for c in found.status.conditions}
    assert conditions["Ready"] == "True"
    assert not found.spec.taints
    info = found.status.node_info
    assert info.kubelet_version == "v1.36.3"
    assert info.container_runtime_version.startswith("containerd://")
    assert {a.type: a.address for a in found.status.addresses}["InternalIP"] == config.FIRST_NODE.ip


def test_training_and_serving_share_one_runtime(
    real_node: ClusterState, image: dict[str, str], core: client.CoreV1Api, namespace: str
) -> None:
    """`pip freeze` in a running trainer container and in a running serving container: one
    lock, requirements/runtime.lock, and no difference."""
    for name in ("trainer", "serving"):
        create(core, namespace, sleeper(name, image[name]))
    frozen = {}
    for name in ("trainer", "serving"):
        running(core, namespace, name)
        output = kubectl(real_node, "exec", "-n", namespace, name, "--",
                         "python", "-m", "pip", "freeze")
        frozen[name] = {canonical(line) for line in output.splitlines() if "==" in line}
    assert frozen["trainer"] == frozen["serving"]
    assert frozen["trainer"] == locked_requirements()


def test_a_write_to_a_read_only_root_filesystem_fails(
    real_node: ClusterState, image: dict[str, str], core: client.CoreV1Api, namespace: str
) -> None:
    script = "open('/tmp/ok', 'w').write('fine'); open('/opt/mlcycle/x', 'w').write('no')"
    create(core, namespace, pod("writer", image["trainer"], ["python", "-c", script]))
    found = finished(core, namespace, "writer")
    terminated = found.status.container_statuses[0].state.terminated
    assert found.status.phase == "Failed"
    assert terminated.exit_code == 1
    assert "Read-only file system" in terminated.message


def test_a_container_over_its_memory_limit_is_oom_killed(
    real_node: ClusterState, image: dict[str, str], core: client.CoreV1Api, namespace: str
) -> None:
    script = "import time; data = b'x' * (512 * 2**20); time.sleep(30)"
    create(core, namespace, pod("hog", image["trainer"], ["python", "-c", script],
                                memory="128Mi"))
    found = finished(core, namespace, "hog")
    terminated = found.status.container_statuses[0].state.terminated
    assert found.status.phase == "Failed"
    assert terminated.reason == "OOMKilled"
    assert terminated.exit_code == 137


def test_a_restricted_pod_runs_non_root_without_capabilities_under_seccomp(
    real_node: ClusterState, image: dict[str, str], core: client.CoreV1Api, namespace: str
) -> None:
    core.patch_namespace(namespace, {"metadata": {"labels": {
        "pod-security.kubernetes.io/enforce": "restricted"}}})
    script = (
        "import json, os; status = dict(line.split(':\\t', 1) for line in "
        "open('/proc/self/status').read().splitlines() if ':\\t' in line); "
        "print(json.dumps({'uid': os.getuid(), 'gid': os.getgid(), "
        "'cap_eff': status['CapEff'].strip(), 'cap_bnd': status['CapBnd'].strip(), "
        "'seccomp': status['Seccomp'].strip(), 'no_new_privs': status['NoNewPrivs'].strip()}))"
    )
    create(core, namespace, pod("restricted", image["serving"], ["python", "-c", script]))
    found = finished(core, namespace, "restricted")
    assert found.status.phase == "Succeeded"
    report = json.loads(kubectl(real_node, "logs", "-n", namespace, "restricted"))
    assert report == {"uid": 10001, "gid": 10001, "cap_eff": "0000000000000000",
                      "cap_bnd": "0000000000000000", "seccomp": "2", "no_new_privs": "1"}


@pytest.fixture
def web_service(
    real_node: ClusterState, image: dict[str, str], core: client.CoreV1Api, namespace: str
) -> Iterator[str]:
    """A web server Pod on the real node behind a ClusterIP Service `web` (port 80)."""
    create(core, namespace, pod(
        "web", image["serving"], ["python", "-m", "http.server", "8080", "-d", "/opt/mlcycle"],
        labels={"app": "web"}, port=8080))
    core.create_namespaced_service(namespace, {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
    })
    running(core, namespace, "web")
    yield core.read_namespaced_service("web", namespace).spec.cluster_ip


def test_a_service_cluster_ip_routes_from_the_host(web_service: str) -> None:
    def answered() -> str | None:
        try:
            response = httpx.get(f"http://{web_service}/", timeout=2)
        except httpx.HTTPError:
            return None
        return response.text if response.status_code == 200 else None

    listing = wait_for(f"http://{web_service}/ through kube-proxy", answered, timeout=60)
    assert "mlcycle_serving" in listing


def test_a_service_name_resolves_and_routes_from_another_pod(
    real_node: ClusterState, web_service: str, image: dict[str, str], core: client.CoreV1Api,
    namespace: str,
) -> None:
    name = f"web.{namespace}.svc.cluster.local"
    # CoreDNS and kube-proxy learn of the new Service and its endpoint through their watches:
    # allow them a moment, as a client would retry.
    script = "\n".join([
        "import json, socket, time, urllib.request",
        "for attempt in range(60):",
        "    try:",
        f"        address = socket.gethostbyname('{name}')",
        f"        body = urllib.request.urlopen('http://{name}/', timeout=5).read().decode()",
        "        break",
        "    except OSError as error:",
        "        print(attempt, error, flush=True)",
        "        time.sleep(1)",
        "print(json.dumps({'address': address, 'served': 'mlcycle_serving' in body}))",
    ])
    create(core, namespace, pod("client", image["trainer"], ["python", "-c", script]))
    found = finished(core, namespace, "client")
    terminated = found.status.container_statuses[0].state.terminated
    assert found.status.phase == "Succeeded", terminated.message
    logs = kubectl(real_node, "logs", "-n", namespace, "client").splitlines()
    report = json.loads(logs[-1])
    assert report == {"address": web_service, "served": True}

