"""Bring the local cluster up and down.

Start order: bridge -> PKI -> etcd /health -> kube-apiserver /readyz -> kubeconfigs ->
kube-controller-manager and kube-scheduler /healthz -> node agent -> Node Ready with the
not-ready taint gone -> the `default` ServiceAccount exists -> the real node
(localkube.realnode: containerd, kubelet, kube-proxy, CoreDNS). Every process and port is
recorded in `.local/cluster.json`, which `down()` and the next `up()` read.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import yaml
from pydantic import BaseModel

from localkube import build, network, processes
from localkube.node.config import ImageRuntime, NodeConfig
from localkube.paths import LocalPaths, local_paths
from localkube.pki import CertSpec, Pki, ensure_pki

NODE_NAME = "localnode"
CONTROL_PLANE = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"]
NODE_AGENT = "node-agent"

IMAGES = [
    ImageRuntime(pattern="python:*", entrypoint=["python3"]),
    ImageRuntime(pattern="*mlcycle/trainer:*", entrypoint=["{python}", "-m", "mlcycle_trainer"]),
    ImageRuntime(pattern="*mlcycle/serving:*", entrypoint=["{python}", "-m", "mlcycle_serving"]),
    ImageRuntime(pattern="*mlcycle/operator:*", entrypoint=["{python}", "-m", "mlcycle"]),
    # What the Helm chart runs besides our own images: MLflow from this virtualenv, and the
    # MinIO server built from the Go module proxy (the real image's entrypoint runs `minio`).
    ImageRuntime(pattern="ghcr.io/mlflow/mlflow:*", entrypoint=["{venv_bin}/mlflow"]),
    ImageRuntime(pattern="quay.io/minio/minio:*", entrypoint=[str(build.binary_path("minio"))]),
]

Progress = build.Progress


class ClusterState(BaseModel):
    """What `up()` started: enough for `down()`, `status()` and the test fixtures."""

    server: str
    host_ip: str
    api_port: int
    etcd_port: int
    kubelet_port: int
    node_name: str
    pids: dict[str, int]
    kubeconfig: Path
    kubectl: Path


def _cert_specs(host_ip: str) -> list[CertSpec]:
    api_names = (
        "127.0.0.1", host_ip, "10.96.0.1", "localhost", "kubernetes", "kubernetes.default",
        "kubernetes.default.svc", "kubernetes.default.svc.cluster.local",
    )
    return [
        CertSpec("apiserver", "kube-apiserver", server_names=api_names),
        CertSpec("kubelet", f"system:node:{NODE_NAME}", "system:nodes", (host_ip, NODE_NAME)),
        CertSpec("admin", "localkube-admin", "system:masters"),
        CertSpec("apiserver-kubelet-client", "kube-apiserver-kubelet-client", "system:masters"),
        CertSpec("controller-manager", "system:kube-controller-manager"),
        CertSpec("scheduler", "system:kube-scheduler"),
    ]


def write_kubeconfig(path: Path, server: str, pki: Pki, user: str) -> None:
    """A self-contained kubeconfig (PEM data embedded) for one client certificate."""

    def data(file: Path) -> str:
        import base64

        return base64.b64encode(file.read_bytes()).decode()

    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "localkube", "cluster": {
                "server": server, "certificate-authority-data": data(pki.ca_cert)}}
        ],
        "users": [
            {"name": user, "user": {
                "client-certificate-data": data(pki.cert(user)),
                "client-key-data": data(pki.key(user))}}
        ],
        "contexts": [{"name": "localkube", "context": {"cluster": "localkube", "user": user}}],
        "current-context": "localkube",
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)


def _tls_context(pki: Pki) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    context.load_cert_chain(str(pki.cert("admin")), str(pki.key("admin")))
    return context


def _insecure_tls() -> ssl.SSLContext:
    """For the controller manager's and scheduler's self-signed /healthz endpoints."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def load_state(paths: LocalPaths | None = None) -> ClusterState | None:
    paths = paths or local_paths()
    if not paths.state.is_file():
        return None
    return ClusterState.model_validate_json(paths.state.read_text())


def is_running(state: ClusterState | None, paths: LocalPaths | None = None) -> bool:
    """True when every recorded process lives and the apiserver is ready."""
    if state is None or not state.pids:
        return False
    if not all(processes.alive(pid) for pid in state.pids.values()):
        return False
    paths = paths or local_paths()
    try:
        import urllib.request

        pki = Pki(paths.pki)
        with urllib.request.urlopen(
            f"{state.server}/readyz", timeout=3, context=_tls_context(pki)
        ) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def up(progress: Progress = build.say, node_agent: bool = True,
       real_node: bool = True) -> ClusterState:
    """Start the cluster, or reuse it when it is already running and healthy.

    Two nodes: the node agent (Pods as local processes) and the real node (a kubelet on
    containerd, localkube.realnode), which is tainted so that only Pods that tolerate
    `mlcycle.dev/real-node` run there."""
    paths = local_paths()
    state = load_state(paths)
    if is_running(state, paths):
        assert state is not None
        progress(f"Cluster already running at {state.server}")
        from localkube.realnode import node as realnode

        if real_node and not realnode.running(state):  # a cluster started before it existed
            realnode.start(state, paths, progress)
        return state
    if state is not None:
        down(progress)
    started = time.monotonic()
    binaries = build.ensure_binaries([*CONTROL_PLANE, "kubectl"], progress)
    host_ip = network.ensure_bridge()
    _make_runtime_traversable()
    for fresh in (paths.pki, paths.etcd_data, paths.node_state, paths.logs):
        shutil.rmtree(fresh, ignore_errors=True)
    paths.logs.mkdir(parents=True)
    pki = ensure_pki(paths.pki, _cert_specs(host_ip))
    ports = {
        "etcd": processes.free_port(),
        "etcd-peer": processes.free_port(),
        "api": processes.free_port(host_ip),
        "kcm": processes.free_port(),
        "scheduler": processes.free_port(),
        "kubelet": processes.free_port(host_ip),
    }
    server = f"https://{host_ip}:{ports['api']}"
    state = ClusterState(
        server=server, host_ip=host_ip, api_port=ports["api"], etcd_port=ports["etcd"],
        kubelet_port=ports["kubelet"], node_name=NODE_NAME, pids={},
        kubeconfig=paths.kubeconfig, kubectl=binaries["kubectl"],
    )
    pids = state.pids  # the model's own dict (pydantic copies what it is given)

    def launch(name: str, argv: list[str]) -> Path:
        log = paths.logs / f"{name}.log"
        pids[name] = processes.start(argv, log)
        paths.state.write_text(state.model_dump_json(indent=2))
        return log

    try:
        etcd_url = f"http://127.0.0.1:{ports['etcd']}"
        log = launch("etcd", _etcd_args(binaries["etcd"], paths, etcd_url, ports["etcd-peer"]))
        processes.wait_healthy("etcd", f"{etcd_url}/health", pids["etcd"], log, 60)
        progress(f"etcd is healthy on {etcd_url}")

        log = launch("kube-apiserver", _apiserver_args(binaries["kube-apiserver"], pki, etcd_url,
                                                        host_ip, ports["api"]))
        processes.wait_healthy("kube-apiserver", f"{server}/readyz", pids["kube-apiserver"], log,
                               120, _tls_context(pki))
        progress(f"kube-apiserver is ready on {server}")

        for user in ("admin", "controller-manager", "scheduler"):
            write_kubeconfig(paths.kubeconfig_for(user), server, pki, user)
        shutil.copyfile(paths.kubeconfig_for("admin"), paths.kubeconfig)
        paths.kubeconfig.chmod(0o600)

        controllers = {
            "kube-controller-manager": (ports["kcm"], _controller_manager_args(paths, pki)),
            "kube-scheduler": (ports["scheduler"], _scheduler_args(paths)),
        }
        for name, (port, args) in controllers.items():
            common = ["--bind-address=127.0.0.1", f"--secure-port={port}", "--leader-elect=false"]
            launch(name, [str(binaries[name]), *args, *common])
        for name, (port, _) in controllers.items():
            processes.wait_healthy(name, f"https://127.0.0.1:{port}/healthz", pids[name],
                                   paths.logs / f"{name}.log", 60, _insecure_tls())
            progress(f"{name} is healthy")

        if node_agent:
            config = _node_config(paths, pki, host_ip, ports["api"], ports["kubelet"])
            launch(NODE_AGENT, [sys.executable, "-m", "localkube.node", "--config", str(config)])
            paths.no_agent_marker.unlink(missing_ok=True)
        else:
            _node_config(paths, pki, host_ip, ports["api"], ports["kubelet"])
            paths.no_agent_marker.touch()
        _link_tools(paths, binaries["kubectl"])
        from localkube import readiness

        if node_agent:
            readiness.wait_for_node(paths.kubeconfig, NODE_NAME, pids[NODE_AGENT],
                                    paths.logs / f"{NODE_AGENT}.log", timeout=90)
            progress(f"Node {NODE_NAME} is Ready")
        readiness.wait_for_default_service_account(paths.kubeconfig, "default", timeout=60)
        if real_node:
            from localkube.realnode import node as realnode

            realnode.start(state, paths, progress)
    except BaseException:
        down(lambda _: None)
        raise
    progress(f"Cluster up in {time.monotonic() - started:.1f} s")
    return state


def _etcd_args(etcd: Path, paths: LocalPaths, client_url: str, peer_port: int) -> list[str]:
    peer_url = f"http://127.0.0.1:{peer_port}"
    return [
        str(etcd), "--name=localkube", f"--data-dir={paths.etcd_data}",
        f"--listen-client-urls={client_url}", f"--advertise-client-urls={client_url}",
        f"--listen-peer-urls={peer_url}", f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster=localkube={peer_url}", "--unsafe-no-fsync=true",
        "--log-level=warn",
    ]


def _apiserver_args(binary: Path, pki: Pki, etcd_url: str, host_ip: str, port: int) -> list[str]:
    return [
        str(binary), f"--etcd-servers={etcd_url}",
        f"--bind-address={host_ip}", f"--advertise-address={host_ip}", f"--secure-port={port}",
        f"--tls-cert-file={pki.cert('apiserver')}",
        f"--tls-private-key-file={pki.key('apiserver')}",
        f"--client-ca-file={pki.ca_cert}",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={pki.service_account_public_key}",
        f"--service-account-signing-key-file={pki.service_account_key}",
        f"--service-cluster-ip-range={network.SERVICE_CIDR}",
        "--authorization-mode=RBAC",
        # Endpoints reject loopback and our bridge is not a real node network: the
        # `kubernetes` Service's endpoints are not reconciled.
        "--endpoint-reconciler-type=none",
        f"--kubelet-client-certificate={pki.cert('apiserver-kubelet-client')}",
        f"--kubelet-client-key={pki.key('apiserver-kubelet-client')}",
        f"--kubelet-certificate-authority={pki.ca_cert}",
        "--kubelet-preferred-address-types=InternalIP",
        "--allow-privileged=true",
        "--profiling=false",
    ]


def _controller_manager_args(paths: LocalPaths, pki: Pki) -> list[str]:
    kubeconfig = paths.kubeconfig_for("controller-manager")
    return [
        f"--kubeconfig={kubeconfig}", f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}", "--controllers=*",
        "--use-service-account-credentials=true",
        f"--service-account-private-key-file={pki.service_account_key}",
        f"--root-ca-file={pki.ca_cert}",
        f"--cluster-signing-cert-file={pki.ca_cert}", f"--cluster-signing-key-file={pki.key('ca')}",
        "--profiling=false",
    ]


def _scheduler_args(paths: LocalPaths) -> list[str]:
    kubeconfig = paths.kubeconfig_for("scheduler")
    return [
        f"--kubeconfig={kubeconfig}", f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}", "--profiling=false",
    ]


def _node_config(
    paths: LocalPaths, pki: Pki, host_ip: str, api_port: int, kubelet_port: int
) -> Path:
    config = NodeConfig(
        node_name=NODE_NAME, kubeconfig=paths.kubeconfig_for("admin"), state_dir=paths.node_state,
        bridge=network.BRIDGE, host_ip=host_ip, pod_cidr=network.POD_CIDR, api_host=host_ip,
        api_port=api_port, ca_file=pki.ca_cert, kubelet_port=kubelet_port,
        kubelet_cert_file=pki.cert("kubelet"), kubelet_key_file=pki.key("kubelet"),
        cpu=str(os.cpu_count() or 2), images=IMAGES,
    )
    paths.node_config.parent.mkdir(parents=True, exist_ok=True)
    paths.node_config.write_text(config.model_dump_json(indent=2))
    return paths.node_config


def _make_runtime_traversable() -> None:
    """Pods run as their securityContext's uid (the images' 10001), and their programs run
    from this virtualenv and its base interpreter. Give others execute-only (traverse, not
    list) permission on the directories above them, as a container image would provide."""
    for place in (Path(sys.prefix), Path(sys.base_prefix), Path(sys.executable).resolve()):
        for directory in [place, *place.parents]:
            mode = directory.stat().st_mode
            if directory.is_dir() and not mode & 0o001:
                directory.chmod(mode | 0o001)


def _link_tools(paths: LocalPaths, kubectl: Path) -> None:
    paths.bin.mkdir(parents=True, exist_ok=True)
    link = paths.bin / "kubectl"
    link.unlink(missing_ok=True)
    link.symlink_to(kubectl)


def down(progress: Progress = build.say) -> None:
    """Stop every process `up()` started, newest first, and the pods' leftovers."""
    from localkube.realnode import node as realnode

    paths = local_paths()
    state = load_state(paths)
    # The real node first: its containers, mounts and iptables chains go with it.
    realnode.stop(state, paths)
    if state is not None:
        for name, pid in reversed(list(state.pids.items())):
            processes.stop(pid, grace_seconds=30 if name == NODE_AGENT else 10)
            progress(f"Stopped {name}")
    _kill_pod_namespaces(progress)
    paths.state.unlink(missing_ok=True)


def _kill_pod_namespaces(progress: Progress) -> None:
    """Safety net for a node agent that died: kill what runs in our pods' netns."""
    result = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
    for line in result.stdout.splitlines():
        namespace = line.split()[0] if line.strip() else ""
        if not namespace.startswith(network.POD_NETNS_PREFIX):
            continue
        pids = subprocess.run(["ip", "netns", "pids", namespace], capture_output=True, text=True)
        for pid in pids.stdout.split():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        subprocess.run(["ip", "netns", "delete", namespace], capture_output=True)
        progress(f"Removed leftover pod network namespace {namespace}")
