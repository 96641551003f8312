"""Bring the local cluster up and down.

Start order: bridge -> PKI -> etcd /health -> kube-apiserver /readyz -> kubeconfigs ->
kube-controller-manager and kube-scheduler /healthz -> the volume provisioner -> the
`default` ServiceAccount exists -> the nodes (localkube.realnode: a containerd and a kubelet
each, one kube-proxy, CoreDNS). Every process and port is recorded in `.local/cluster.json`, which
`down()` and the next `up()` read.
"""

from __future__ import annotations

import os
import shutil
import ssl
import sys
import tempfile
import time
from pathlib import Path

import yaml
from pydantic import BaseModel

from localkube import build, network, processes
from localkube.paths import LocalPaths, local_paths
from localkube.pki import CertSpec, Pki, ensure_pki
from localkube.realnode.config import NODE_NAME, node_identities

CONTROL_PLANE = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"]
PROVISIONER = "provisioner"

Progress = build.Progress


class ClusterState(BaseModel):
    """What `up()` started: enough for `down()`, `status()` and the test fixtures."""

    server: str
    host_ip: str
    api_port: int
    etcd_port: int
    pids: dict[str, int]
    kubeconfig: Path
    kubectl: Path
    nodes: int = 1  # real nodes, each a containerd and a kubelet (`make up NODES=N`)


NODES_VARIABLE = "LOCALKUBE_NODES"  # what `make ... NODES=N` sets


def requested_nodes(value: str | None = None) -> int | None:
    """The node count asked for by `$LOCALKUBE_NODES` (or `value`), None when unset; refused
    when out of range, before anything starts."""
    value = os.environ.get(NODES_VARIABLE) if value is None else value
    if not value:
        return None
    if not value.isdigit():
        raise ValueError(f"{NODES_VARIABLE}={value}: a node count must be a whole number")
    count = int(value)
    node_identities(count)
    return count


def _cert_specs(host_ip: str) -> list[CertSpec]:
    api_names = (
        "127.0.0.1", host_ip, "10.96.0.1", "localhost", "kubernetes", "kubernetes.default",
        "kubernetes.default.svc", "kubernetes.default.svc.cluster.local",
    )
    return [
        CertSpec("apiserver", "kube-apiserver", server_names=api_names),
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


def up(progress: Progress = build.say, real_node: bool = True,
       nodes: int | None = None) -> ClusterState:
    """Start the cluster, or reuse it when it is already running and healthy.

    Its nodes are real nodes (a kubelet on containerd each, localkube.realnode): `nodes` of
    them, else `$LOCALKUBE_NODES`, else as many as run already, else one. A running cluster
    with another count keeps its control plane and restarts its nodes. Without `real_node`,
    the control plane alone (for node development)."""
    from localkube.realnode import node as realnode

    paths = local_paths()
    nodes = nodes if nodes is not None else requested_nodes()
    if nodes is not None:
        node_identities(nodes)  # out of range: refused before anything starts
    state = load_state(paths)
    if is_running(state, paths):
        assert state is not None
        progress(f"Cluster already running at {state.server}")
        if not real_node:
            return state
        if nodes is not None and nodes != state.nodes:
            progress(f"Restarting the real nodes: {nodes} asked for, {state.nodes} running")
            realnode.start(state, paths, progress, count=nodes)
        elif not realnode.running(state):  # stopped by `python -m localkube.realnode`
            realnode.start(state, paths, progress)
        return state
    _refuse_if_another_checkout_runs(paths)
    if state is not None:
        down(progress)
    started = time.monotonic()
    binaries = build.ensure_binaries([*CONTROL_PLANE, "kubectl"], progress)
    host_ip = network.ensure_bridge()
    for fresh in (paths.pki, paths.etcd_data, paths.volumes, paths.logs):
        shutil.rmtree(fresh, ignore_errors=True)
    paths.logs.mkdir(parents=True)
    pki = ensure_pki(paths.pki, _cert_specs(host_ip))
    ports = {
        "etcd": processes.free_port(),
        "etcd-peer": processes.free_port(),
        "api": processes.free_port(host_ip),
        "kcm": processes.free_port(),
        "scheduler": processes.free_port(),
    }
    server = f"https://{host_ip}:{ports['api']}"
    state = ClusterState(
        server=server, host_ip=host_ip, api_port=ports["api"], etcd_port=ports["etcd"],
        pids={}, kubeconfig=paths.kubeconfig, kubectl=binaries["kubectl"], nodes=nodes or 1,
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
        launch(PROVISIONER, [sys.executable, "-m", "localkube.provisioner",
                             "--kubeconfig", str(paths.kubeconfig), "--root", str(paths.volumes),
                             "--node", NODE_NAME])
        _link_tools(paths, binaries["kubectl"])
        from localkube import readiness

        readiness.wait_for_default_service_account(paths.kubeconfig, "default", timeout=60)
        if real_node:
            realnode.start(state, paths, progress)
    except BaseException:
        down(lambda _: None)
        raise
    _owner_record().write_text(str(paths.root))
    progress(f"Cluster up in {time.monotonic() - started:.1f} s")
    return state


def _owner_record() -> Path:
    """Machine-wide: which checkout's cluster runs here. Its node holds what exists once per
    machine (kubelet's ports, the CNI bridge, kube-proxy's iptables chains), so a second
    checkout (another clone, `make bench-ci`) must not start one beside it."""
    return Path(tempfile.gettempdir()) / f"localkube-{os.getuid()}.owner"


def _refuse_if_another_checkout_runs(paths: LocalPaths) -> None:
    record = _owner_record()
    if not record.is_file():
        return
    other = LocalPaths(Path(record.read_text().strip()))
    if other.root != paths.root and is_running(load_state(other), other):
        raise RuntimeError(
            f"a local cluster from {other.root} is running on this machine, and its node holds "
            "kubelet's ports, the CNI bridge and kube-proxy's iptables chains: stop it there "
            "(`make down`) before starting another")


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


def _link_tools(paths: LocalPaths, kubectl: Path) -> None:
    paths.bin.mkdir(parents=True, exist_ok=True)
    link = paths.bin / "kubectl"
    link.unlink(missing_ok=True)
    link.symlink_to(kubectl)


def apiserver_outage(seconds: float) -> None:
    """kube-apiserver down for `seconds`, then back on its port: every watch and connection
    to it is cut, as a control-plane upgrade or crash cuts them."""
    paths = local_paths()
    state = load_state(paths)
    assert state is not None, "no cluster runs"
    name = "kube-apiserver"
    state.pids[name] = processes.outage(state.pids[name], paths.logs / f"{name}.log", seconds)
    paths.state.write_text(state.model_dump_json(indent=2))
    pki = ensure_pki(paths.pki, _cert_specs(state.host_ip))
    processes.wait_healthy(name, f"{state.server}/readyz", state.pids[name],
                           paths.logs / f"{name}.log", 120, _tls_context(pki))


def down(progress: Progress = build.say) -> None:
    """Stop every process `up()` started, newest first: the node first, with its containers,
    mounts and iptables chains."""
    from localkube.realnode import node as realnode

    paths = local_paths()
    state = load_state(paths)
    realnode.stop(state, paths)
    if state is not None:
        for name, pid in reversed(list(state.pids.items())):
            processes.stop(pid)
            progress(f"Stopped {name}")
    paths.state.unlink(missing_ok=True)
    record = _owner_record()
    if record.is_file() and Path(record.read_text().strip()) == paths.root:
        record.unlink()
