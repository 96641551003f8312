"""Node registration and liveness: the Node object, its status and its Lease."""

from __future__ import annotations

import logging
import threading
import time

from . import nodeinfo
from .clock import rfc3339, rfc3339_micro
from .config import NodeConfig
from .kube import JSON, MERGE, Kube, KubeError, Stopped, retry

log = logging.getLogger(__name__)

LEASE_RENEW_SECONDS = 10.0
STATUS_REFRESH_SECONDS = 60.0


class NodeHeartbeat:
    """Registers the Node, then renews its Lease and refreshes its status."""

    def __init__(self, kube: Kube, config: NodeConfig, stop: threading.Event) -> None:
        self.kube = kube
        self.config = config
        self.stop = stop
        self.facts = nodeinfo.gather_host_facts(config.state_dir)
        self.kubelet_version = nodeinfo.KUBELET_VERSION
        self.node_uid: str | None = None
        self._conditions: list[JSON] = []
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    @property
    def _node_path(self) -> str:
        return f"/api/v1/nodes/{self.config.node_name}"

    @property
    def allocatable(self) -> dict[str, str]:
        return nodeinfo.node_resources(self.config, self.facts)

    def register(self) -> None:
        """Create or adopt the Node, publish its status and Lease (retries until done)."""
        version = retry(lambda: self.kube.get("/version"), what="GET /version", stop=self.stop)
        git_version = str((version or {}).get("gitVersion", ""))
        if git_version.startswith("v1."):
            self.kubelet_version = git_version
        node = retry(self._ensure_node, what="register node", stop=self.stop)
        self.node_uid = node["metadata"]["uid"]
        self._conditions = (node.get("status") or {}).get("conditions") or []
        retry(self.update_status, what="update node status", stop=self.stop)
        retry(self.renew_lease, what="renew node lease", stop=self.stop)
        log.info("Registered node %s (kubelet %s)", self.config.node_name, self.kubelet_version)

    def start(self) -> None:
        self._thread.start()

    def _ensure_node(self) -> JSON:
        body = nodeinfo.build_node(self.config)
        try:
            node: JSON = self.kube.request("POST", "/api/v1/nodes", body=body)
            log.info("Created node %s", self.config.node_name)
            return node
        except KubeError as exc:
            if exc.status != 409:
                raise
        node = self.kube.get(self._node_path)
        patch: JSON = {"metadata": {"labels": nodeinfo.node_labels(self.config)}}
        current_cidr = (node.get("spec") or {}).get("podCIDR")
        if not current_cidr:
            patch["spec"] = {"podCIDR": self.config.pod_cidr, "podCIDRs": [self.config.pod_cidr]}
        elif current_cidr != self.config.pod_cidr:
            log.warning(
                "Node %s has podCIDR %s, config says %s (podCIDR is immutable)",
                self.config.node_name,
                current_cidr,
                self.config.pod_cidr,
            )
        adopted: JSON = self.kube.patch(self._node_path, patch, MERGE)
        return adopted

    def update_status(self) -> None:
        status = nodeinfo.build_node_status(
            self.config,
            self.facts,
            kubelet_version=self.kubelet_version,
            now=rfc3339(),
            previous_conditions=self._conditions,
        )
        try:
            node = self.kube.patch(f"{self._node_path}/status", {"status": status})
        except KubeError as exc:
            if exc.status != 404:
                raise
            log.warning("Node %s disappeared; registering it again", self.config.node_name)
            node = self._ensure_node()
            self.node_uid = node["metadata"]["uid"]
            node = self.kube.patch(f"{self._node_path}/status", {"status": status})
        self._conditions = (node.get("status") or {}).get("conditions") or status["conditions"]

    def renew_lease(self) -> None:
        name = self.config.node_name
        path = f"/apis/coordination.k8s.io/v1/namespaces/{nodeinfo.LEASE_NAMESPACE}/leases/{name}"
        lease = nodeinfo.build_lease(
            self.config, node_uid=self.node_uid, renew_time=rfc3339_micro()
        )
        try:
            self.kube.patch(path, {"spec": lease["spec"]})
        except KubeError as exc:
            if exc.status != 404:
                raise
            self.kube.request(
                "POST",
                f"/apis/coordination.k8s.io/v1/namespaces/{nodeinfo.LEASE_NAMESPACE}/leases",
                body=lease,
            )
            log.info("Created lease %s/%s", nodeinfo.LEASE_NAMESPACE, name)

    def _run(self) -> None:
        last_status = time.monotonic()
        while not self.stop.wait(LEASE_RENEW_SECONDS):
            try:
                retry(self.renew_lease, what="renew node lease", stop=self.stop, attempts=3)
                if time.monotonic() - last_status >= STATUS_REFRESH_SECONDS:
                    retry(self.update_status, what="update node status", stop=self.stop, attempts=3)
                    last_status = time.monotonic()
            except Stopped:
                return
            except Exception:
                log.exception("Node heartbeat failed; will retry")
