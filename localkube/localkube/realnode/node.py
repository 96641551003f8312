"""Start and stop the real nodes against the running control plane.

Start order: for each node, its bridge, certificates, kubeconfig and RBAC binding, then its
containerd (pause, base, CoreDNS and workload images loaded) and its kubelet; then until
every Node is Ready -> kube-proxy, once for the host -> CoreDNS. `down()` stops kube-proxy,
then each node's kubelet, containers and containerd, and takes back its mounts, cgroups and
bridge; the iptables chains go last, once for the host.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from localkube import build, images, processes, readiness
from localkube.cluster import ClusterState, load_state, write_kubeconfig
from localkube.paths import LocalPaths
from localkube.pki import CertSpec, Pki, ensure_pki
from localkube.realnode import config, containerd, dns, host
from localkube.realnode.config import FIRST_NODE, KubeletSettings, NodeDirs, NodeIdentity

KUBELET = "kubelet"  # the binary's name
KUBE_PROXY = "kube-proxy"  # one for the host, whatever the node count (config.kube_proxy_config)

Launch = Callable[[str, list[str]], Path]  # name, argv -> log file (the pid is recorded)


def node_dirs(paths: LocalPaths, node: NodeIdentity = FIRST_NODE) -> NodeDirs:
    return node.dirs(paths.root)


def container_pid(paths: LocalPaths, pod: client.V1Pod) -> int:
    """The host pid of the main process (PID 1 inside) of the Pod's first container, from the
    containerd of the node that runs it."""
    index = config.node_index(pod.spec.node_name)
    if index is None:
        raise ValueError(f"Pod {pod.metadata.name} runs on {pod.spec.node_name}, not a real node")
    container_id = pod.status.container_statuses[0].container_id.removeprefix("containerd://")
    return containerd.running_containers(node_dirs(paths, NodeIdentity(index)))[container_id]


def process_names(count: int) -> list[str]:
    """The pids a cluster of `count` nodes records: each node's containerd and kubelet, and
    the host's one kube-proxy."""
    return [*(name for node in config.node_identities(count)
              for name in (node.containerd, node.kubelet)), KUBE_PROXY]


def cert_specs(nodes: list[NodeIdentity]) -> list[CertSpec]:
    return [
        *(spec for node in nodes for spec in (
            CertSpec(node.client_cert, f"system:node:{node.name}", "system:nodes"),
            CertSpec(node.serving_cert, f"system:node:{node.name}", "system:nodes",
                     (node.ip, node.name)),
        )),
        CertSpec("kube-proxy", "system:kube-proxy"),
    ]


def node_role_binding(node: NodeIdentity) -> client.V1ClusterRoleBinding:
    """The apiserver authorizes with RBAC alone (no Node authorizer), and since 1.8 the
    `system:node` role is bound to no one: bind it to the node's identity."""
    return client.V1ClusterRoleBinding(
        metadata=client.V1ObjectMeta(name=f"localkube:node:{node.name}"),
        role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole",
                                  name="system:node"),
        subjects=[client.RbacV1Subject(api_group="rbac.authorization.k8s.io", kind="User",
                                       name=f"system:node:{node.name}")],
    )


def _bind_node_role(kubeconfig: Path, node: NodeIdentity) -> None:
    rbac = client.RbacAuthorizationV1Api(readiness.api_client(kubeconfig))
    try:
        rbac.create_cluster_role_binding(node_role_binding(node))
    except ApiException as error:
        if error.status != 409:
            raise


def up(paths: LocalPaths, server: str, launch: Launch, pids: dict[str, int], count: int = 1,
       progress: build.Progress = build.say) -> None:
    """Start `count` nodes (containerd and kubelet each), kube-proxy and CoreDNS; return once
    every Node is Ready."""
    started = time.monotonic()
    missing = [tool for tool in (containerd.CONTAINERD, containerd.CTR, "/usr/sbin/runc",
                                 "/usr/lib/cni/bridge", "/usr/bin/buildah", "/usr/sbin/iptables")
               if not Path(tool).exists()]
    if missing:
        raise RuntimeError(f"The real node needs {', '.join(missing)}: run `make node-deps`")
    nodes = config.node_identities(count)
    binaries = build.ensure_binaries([KUBELET, KUBE_PROXY], progress)
    node_images = images.ensure_images(images.NODE_IMAGES, progress)
    stop_and_clean(paths, _nodes_on_disk(paths, count))
    pki = ensure_pki(paths.pki, cert_specs(nodes))
    write_kubeconfig(paths.kubeconfig_for("kube-proxy"), server, pki, "kube-proxy")

    kubelet_logs = {node: _start_node(paths, server, launch, pids, pki, node, node_images,
                                      binaries[KUBELET], progress) for node in nodes}
    for node in nodes:
        readiness.wait_for_node(paths.kubeconfig, node.name, pids[node.kubelet],
                                kubelet_logs[node], timeout=120)
        progress(f"Node {node.name} (kubelet on containerd) is Ready")

    # One kube-proxy for every node: they share this host's network namespace and iptables.
    healthz = processes.free_port()
    proxy_config = node_dirs(paths).kube_proxy_config
    proxy_config.write_text(yaml.safe_dump(config.kube_proxy_config(
        paths.kubeconfig_for("kube-proxy"), healthz, processes.free_port(), tuple(nodes))))
    log = launch(KUBE_PROXY, [str(binaries[KUBE_PROXY]), f"--config={proxy_config}"])
    processes.wait_healthy(KUBE_PROXY, f"http://127.0.0.1:{healthz}/healthz", pids[KUBE_PROXY],
                           log, 60)
    progress("kube-proxy is healthy (iptables mode)")

    _apply(paths.kubeconfig, dns.build_manifests(node_images["coredns"].reference))
    progress(f"{len(nodes)} real node(s) up in {time.monotonic() - started:.1f} s")


def _start_node(paths: LocalPaths, server: str, launch: Launch, pids: dict[str, int],
                pki: Pki, node: NodeIdentity, node_images: dict[str, images.Built],
                kubelet: Path, progress: build.Progress) -> Path:
    """The node's host side, its containerd (the node images loaded) and its kubelet; returns
    the kubelet's log."""
    dirs = node_dirs(paths, node)
    _prepare_host(node, dirs)
    write_kubeconfig(paths.kubeconfig_for(node.client_cert), server, pki, node.client_cert)
    _bind_node_role(paths.kubeconfig, node)
    dirs.containerd_config.write_text(
        config.containerd_config(dirs, node_images["pause"].reference, node))
    (dirs.cni_conf_dir / node.cni_conf_file).write_text(
        json.dumps(config.cni_conflist(dirs, node), indent=2))
    log = launch(node.containerd, containerd.argv(dirs))
    containerd.wait_ready(dirs, pids[node.containerd], log)
    for built in node_images.values():
        containerd.import_image(dirs, built.reference, built.archive)
    containerd.tag(dirs, node_images["base"].reference, images.PYTHON_IMAGE)
    progress(f"containerd of {node.name} is ready ({dirs.containerd_socket})")
    dirs.kubelet_config.write_text(
        yaml.safe_dump(config.kubelet_config(dirs, _kubelet_settings(pki, node), node)))
    return launch(node.kubelet, [str(kubelet), *config.kubelet_args(
        dirs, paths.kubeconfig_for(node.client_cert), node)])


def _prepare_host(node: NodeIdentity, dirs: NodeDirs) -> None:
    """The node's bridge, cgroup root and fresh directories, its root a shared mount."""
    host.ensure_bridge(node)
    host.ensure_cgroup_root(node)
    for fresh in dirs.fresh:
        shutil.rmtree(fresh, ignore_errors=True)
    for directory in (dirs.containerd_root, dirs.containerd_state, dirs.cni_conf_dir,
                      dirs.kubelet_root):
        directory.mkdir(parents=True, exist_ok=True)
    host.share_mounts(dirs.root)


def _apply(kubeconfig: Path, manifests: list[dict[str, Any]]) -> None:
    """Server-side apply: idempotent, so a restarted node updates what a previous one made."""
    result = subprocess.run(
        [str(build.binary_path("kubectl")), "--kubeconfig", str(kubeconfig), "apply",
         "--server-side", "--force-conflicts", "--field-manager=localkube", "-f", "-"],
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests}),
        capture_output=True, text=True, timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl apply failed: {result.stderr.strip()}")


def running(state: ClusterState) -> bool:
    """Every process of every node the cluster records lives, and kube-proxy."""
    return all(name in state.pids and processes.alive(state.pids[name])
               for name in process_names(state.nodes))


def start(state: ClusterState, paths: LocalPaths, progress: build.Progress = build.say,
          count: int | None = None) -> None:
    """Start `count` real nodes (by default as many as the cluster records) next to a running
    control plane; their pids join the cluster's and their count its record."""
    stop(state, paths)
    if count is not None:
        state.nodes = count
    paths.state.write_text(state.model_dump_json(indent=2))
    up(paths, state.server, _launcher(state, paths), state.pids, state.nodes, progress)


def _launcher(state: ClusterState, paths: LocalPaths) -> Launch:
    """Start a process whose pid joins the cluster's record at once."""

    def launch(name: str, command: list[str]) -> Path:
        log = paths.logs / f"{name}.log"
        state.pids[name] = processes.start(command, log)
        paths.state.write_text(state.model_dump_json(indent=2))
        return log

    return launch


def add_node(state: ClusterState, paths: LocalPaths, progress: build.Progress = build.say,
             ) -> NodeIdentity:
    """One more node next to the running ones, which keep running (a test's second node);
    returns it once Ready. Its NodePorts answer from the next `make up` on (kube-proxy keeps
    the addresses it started with); ClusterIPs and DNS route at once."""
    node = NodeIdentity(state.nodes + 1)
    binaries = build.ensure_binaries([KUBELET], progress)
    node_images = images.ensure_images(images.NODE_IMAGES, progress)
    stop_and_clean_node(node, node_dirs(paths, node), {})  # what a lost record left
    pki = ensure_pki(paths.pki, cert_specs(config.node_identities(node.index)))
    state.nodes = node.index
    launch = _launcher(state, paths)
    log = _start_node(paths, state.server, launch, state.pids, pki, node, node_images,
                      binaries[KUBELET], progress)
    readiness.wait_for_node(paths.kubeconfig, node.name, state.pids[node.kubelet], log,
                            timeout=120)
    progress(f"Node {node.name} (kubelet on containerd) is Ready")
    return node


def remove_node(state: ClusterState, paths: LocalPaths) -> None:
    """Stop the last node and delete its Node, so that nothing counts it any more (the
    scheduler's topology spread would, NotReady or not); its Pods go with it."""
    node = NodeIdentity(state.nodes)
    if node.is_first:
        raise ValueError("the first node is the cluster's own: make down")
    stop_node(state, paths, node.index)
    try:
        client.CoreV1Api(readiness.api_client(paths.kubeconfig)).delete_node(node.name)
    except ApiException as error:
        if error.status != 404:  # never registered, or deleted already
            raise
    state.nodes = node.index - 1
    paths.state.write_text(state.model_dump_json(indent=2))


def stop(state: ClusterState | None, paths: LocalPaths) -> None:
    """Stop every real node, if any runs, and drop their pids from the cluster's record."""
    nodes = _nodes_on_disk(paths, state.nodes if state is not None else 1)
    mine = {}
    if state is not None:
        mine = {name: state.pids.pop(name) for name in process_names(len(nodes))
                if name in state.pids}
        if mine and paths.state.is_file():
            paths.state.write_text(state.model_dump_json(indent=2))
    stop_and_clean(paths, nodes, mine)


def stop_node(state: ClusterState, paths: LocalPaths, index: int) -> None:
    """Stop node `index` alone, as a machine failing would (its Node goes NotReady, its Pods
    are lost); the others and kube-proxy keep running. The next `make up` restarts them all."""
    node = NodeIdentity(index)
    if index > state.nodes:
        raise ValueError(f"node {index}: the cluster has {state.nodes}")
    mine = {name: state.pids.pop(name) for name in (node.containerd, node.kubelet)
            if name in state.pids}
    paths.state.write_text(state.model_dump_json(indent=2))
    stop_and_clean_node(node, node_dirs(paths, node), mine)


def _indices_on_disk(paths: LocalPaths) -> list[int]:
    if not paths.root.is_dir():
        return [1]
    return [1, *(index for entry in paths.root.iterdir()
                 if (index := config.node_index(entry.name)) is not None)]


def _nodes_on_disk(paths: LocalPaths, count: int) -> list[NodeIdentity]:
    """The nodes `count` names and any other whose directory a previous start left (a record
    lost, or a larger cluster before this one): each is cleaned before a start and at `down`."""
    return config.node_identities(max(count, *_indices_on_disk(paths)))


def _kubelet_settings(pki: Pki, node: NodeIdentity) -> KubeletSettings:
    import os

    return KubeletSettings(
        ca_file=pki.ca_cert, cert_file=pki.cert(node.serving_cert),
        key_file=pki.key(node.serving_cert), port=processes.free_port(node.ip),
        healthz_port=processes.free_port(), cpu=os.cpu_count() or 2,
    )


def load_images(paths: LocalPaths, names: tuple[str, ...], count: int | None = None,
                progress: build.Progress = build.say) -> dict[str, str]:
    """Build (or find cached) and load images into every node's containerd (`count` of them,
    by default as many as the cluster records): a Pod may land on any node, and none can
    pull. Returns name -> reference."""
    if count is None:
        state = load_state(paths)
        count = state.nodes if state is not None else 1
    built_images = images.ensure_images(names, progress)
    for node in config.node_identities(count):
        dirs = node_dirs(paths, node)
        for built in built_images.values():
            started = time.monotonic()
            if containerd.import_image(dirs, built.reference, built.archive):
                progress(f"Loaded {built.reference} into {node.name} in "
                         f"{time.monotonic() - started:.0f} s")
    return {name: built.reference for name, built in built_images.items()}


def wait_for_dns(kubeconfig: Path, timeout: float = 120) -> None:
    apps = client.AppsV1Api(readiness.api_client(kubeconfig))

    def available() -> bool:
        deployment = apps.read_namespaced_deployment(dns.NAME, dns.NAMESPACE)
        return bool(deployment.status.available_replicas)

    deadline = time.monotonic() + timeout
    while not available():
        if time.monotonic() > deadline:
            raise RuntimeError(f"CoreDNS not available within {timeout:.0f} s")
        time.sleep(0.5)


def stop_and_clean(paths: LocalPaths, nodes: list[NodeIdentity],
                   pids: dict[str, int] | None = None) -> None:
    """Stop kube-proxy and the nodes' processes, take back everything each node made on the
    host, then, with the last node gone, the iptables chains they all share."""
    pids = pids or {}
    if KUBE_PROXY in pids:
        processes.stop(pids[KUBE_PROXY])
    for node in nodes:
        stop_and_clean_node(node, node_dirs(paths, node), pids)
    if shutil.which("iptables") and KUBE_PROXY in pids:
        proxy = build.binary_path(KUBE_PROXY)
        if proxy.is_file():
            subprocess.run([str(proxy), "--cleanup"], capture_output=True, timeout=60)
    host.remove_chains()


def stop_and_clean_node(node: NodeIdentity, dirs: NodeDirs, pids: dict[str, int]) -> None:
    """Stop one node's kubelet, containers and containerd; remove its mounts, pod cgroups and
    bridge. The other nodes' pods, cgroups and bridges are left as they are."""
    if node.kubelet in pids:
        processes.stop(pids[node.kubelet])
    host.kill_pod_processes(node)
    # With the containers gone, containerd deletes their tasks and the shims exit.
    containerd.wait_shims_gone(dirs, timeout=10)
    if node.containerd in pids:
        processes.stop(pids[node.containerd])
    containerd.kill_shims(dirs)
    host.unmount_all(dirs.root)
    host.remove_pod_cgroups(node)
    host.remove_bridge(node)
