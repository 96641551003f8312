"""Start and stop the real node against the running control plane.

Start order: bridge and sysctls -> certificates, kubeconfigs and the node's RBAC binding ->
containerd (pause and CoreDNS images loaded) -> kubelet, until the Node is Ready -> kube-proxy
-> CoreDNS. `down()` stops the kubelet, kills every container, stops containerd and removes
the mounts, cgroups, iptables chains and the bridge the node made.
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
from localkube.cluster import ClusterState, write_kubeconfig
from localkube.paths import LocalPaths
from localkube.pki import CertSpec, Pki, ensure_pki
from localkube.realnode import config, containerd, dns, host
from localkube.realnode.config import NODE_NAME, KubeletSettings, NodeDirs

CONTAINERD = "containerd"
KUBELET = "kubelet"
KUBE_PROXY = "kube-proxy"
PROCESSES = (CONTAINERD, KUBELET, KUBE_PROXY)

Launch = Callable[[str, list[str]], Path]  # name, argv -> log file (the pid is recorded)


def node_dirs(paths: LocalPaths) -> NodeDirs:
    return NodeDirs(paths.root / "realnode")


def cert_specs() -> list[CertSpec]:
    return [
        CertSpec("realnode-client", f"system:node:{NODE_NAME}", "system:nodes"),
        CertSpec("realnode-serving", f"system:node:{NODE_NAME}", "system:nodes",
                 (config.node_ip(), NODE_NAME)),
        CertSpec("kube-proxy", "system:kube-proxy"),
    ]


def _bind_node_role(kubeconfig: Path) -> None:
    """The apiserver authorizes with RBAC alone (no Node authorizer), and since 1.8 the
    `system:node` role is bound to no one: bind it to this node's identity."""
    rbac = client.RbacAuthorizationV1Api(readiness.api_client(kubeconfig))
    binding = client.V1ClusterRoleBinding(
        metadata=client.V1ObjectMeta(name=f"localkube:node:{NODE_NAME}"),
        role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole",
                                  name="system:node"),
        subjects=[client.RbacV1Subject(api_group="rbac.authorization.k8s.io", kind="User",
                                       name=f"system:node:{NODE_NAME}")],
    )
    try:
        rbac.create_cluster_role_binding(binding)
    except ApiException as error:
        if error.status != 409:
            raise


def up(paths: LocalPaths, server: str, launch: Launch,
       pids: dict[str, int], progress: build.Progress = build.say) -> None:
    """Start containerd, the kubelet, kube-proxy and CoreDNS; return once the Node is Ready."""
    started = time.monotonic()
    missing = [tool for tool in (containerd.CONTAINERD, containerd.CTR, "/usr/sbin/runc",
                                 "/usr/lib/cni/bridge", "/usr/bin/buildah", "/usr/sbin/iptables")
               if not Path(tool).exists()]
    if missing:
        raise RuntimeError(f"The real node needs {', '.join(missing)}: run `make node-deps`")
    dirs = node_dirs(paths)
    binaries = build.ensure_binaries([KUBELET, KUBE_PROXY], progress)
    node_images = images.ensure_images(images.NODE_IMAGES, progress)
    stop_and_clean(dirs)
    host.ensure_bridge()
    for fresh in dirs.fresh:
        shutil.rmtree(fresh, ignore_errors=True)
    for directory in (dirs.containerd_root, dirs.containerd_state, dirs.cni_conf_dir,
                      dirs.kubelet_root):
        directory.mkdir(parents=True, exist_ok=True)
    host.share_mounts(dirs.root)

    pki = ensure_pki(paths.pki, cert_specs())
    for user in ("realnode-client", "kube-proxy"):
        write_kubeconfig(paths.kubeconfig_for(user), server, pki, user)
    _bind_node_role(paths.kubeconfig)

    dirs.containerd_config.write_text(
        config.containerd_config(dirs, node_images["pause"].reference))
    (dirs.cni_conf_dir / "10-mlcycle-realnode.conflist").write_text(
        json.dumps(config.cni_conflist(dirs), indent=2))
    log = launch(CONTAINERD, containerd.argv(dirs))
    containerd.wait_ready(dirs, pids[CONTAINERD], log)
    for built in node_images.values():
        containerd.import_image(dirs, built.reference, built.archive)
    containerd.tag(dirs, node_images["base"].reference, images.PYTHON_IMAGE)
    progress(f"containerd is ready ({dirs.containerd_socket})")

    settings = _kubelet_settings(pki)
    dirs.kubelet_config.write_text(yaml.safe_dump(config.kubelet_config(dirs, settings)))
    log = launch(KUBELET, [str(binaries[KUBELET]),
                           *config.kubelet_args(dirs, paths.kubeconfig_for("realnode-client"))])
    readiness.wait_for_node(paths.kubeconfig, NODE_NAME, pids[KUBELET], log, timeout=120)
    progress(f"Node {NODE_NAME} (kubelet on containerd) is Ready")

    healthz = processes.free_port()
    dirs.kube_proxy_config.write_text(yaml.safe_dump(config.kube_proxy_config(
        paths.kubeconfig_for("kube-proxy"), healthz, processes.free_port())))
    log = launch(KUBE_PROXY, [str(binaries[KUBE_PROXY]), f"--config={dirs.kube_proxy_config}"])
    processes.wait_healthy(KUBE_PROXY, f"http://127.0.0.1:{healthz}/healthz", pids[KUBE_PROXY],
                           log, 60)
    progress("kube-proxy is healthy (iptables mode)")

    _apply(paths.kubeconfig, dns.build_manifests(node_images["coredns"].reference))
    progress(f"Real node up in {time.monotonic() - started:.1f} s")


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
    return all(name in state.pids and processes.alive(state.pids[name]) for name in PROCESSES)


def start(state: ClusterState, paths: LocalPaths, progress: build.Progress = build.say) -> None:
    """Start the real node next to a running control plane; its pids join the cluster's."""
    stop(state, paths)

    def launch(name: str, command: list[str]) -> Path:
        log = paths.logs / f"{name}.log"
        state.pids[name] = processes.start(command, log)
        paths.state.write_text(state.model_dump_json(indent=2))
        return log

    up(paths, state.server, launch, state.pids, progress)


def stop(state: ClusterState | None, paths: LocalPaths) -> None:
    """Stop the real node, if it runs, and drop its pids from the cluster's record."""
    mine = {}
    if state is not None:
        mine = {name: state.pids.pop(name) for name in PROCESSES if name in state.pids}
        if mine and paths.state.is_file():
            paths.state.write_text(state.model_dump_json(indent=2))
    stop_and_clean(node_dirs(paths), mine)


def _kubelet_settings(pki: Pki) -> KubeletSettings:
    import os

    return KubeletSettings(
        ca_file=pki.ca_cert, cert_file=pki.cert("realnode-serving"),
        key_file=pki.key("realnode-serving"), port=processes.free_port(config.node_ip()),
        healthz_port=processes.free_port(), cpu=os.cpu_count() or 2,
    )


def load_images(paths: LocalPaths, names: tuple[str, ...],
                progress: build.Progress = build.say) -> dict[str, str]:
    """Build (or find cached) and load images into the node's containerd; name -> reference."""
    dirs = node_dirs(paths)
    loaded = {}
    for name, built in images.ensure_images(names, progress).items():
        started = time.monotonic()
        if containerd.import_image(dirs, built.reference, built.archive):
            progress(f"Loaded {built.reference} into the node in "
                     f"{time.monotonic() - started:.0f} s")
        loaded[name] = built.reference
    return loaded


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


def stop_and_clean(dirs: NodeDirs, pids: dict[str, int] | None = None) -> None:
    """Stop the node's processes and take back everything it made on the host."""
    pids = pids or {}
    for name in (KUBE_PROXY, KUBELET):
        if name in pids:
            processes.stop(pids[name])
    host.kill_pod_processes()
    # With the containers gone, containerd deletes their tasks and the shims exit.
    containerd.wait_shims_gone(dirs, timeout=10)
    if CONTAINERD in pids:
        processes.stop(pids[CONTAINERD])
    containerd.kill_shims(dirs)
    host.unmount_all(dirs.root)
    host.remove_pod_cgroups()
    if shutil.which("iptables") and KUBE_PROXY in pids:
        proxy = build.binary_path(KUBE_PROXY)
        if proxy.is_file():
            subprocess.run([str(proxy), "--cleanup"], capture_output=True, timeout=60)
    host.remove_chains()
    host.remove_bridge()
