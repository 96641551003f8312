"""A pod's sandbox: its network namespace and IP, its volumes and service-account tokens."""

from __future__ import annotations

import copy
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from .clock import parse_rfc3339
from .events import PodRef
from .kube import JSON, KubeError
from .network import SandboxError, SandboxNames, create_sandbox, delete_sandbox
from .services import NodeServices
from .volumes import PodVolumes, VolumeError

log = logging.getLogger(__name__)

TOKEN_REFRESH_FRACTION = 0.8
TOKEN_MAX_AGE_SECONDS = 24 * 3600.0


class PodSandbox:
    """Set up once per pod run (retried with backoff), torn down when the pod ends."""

    def __init__(
        self, svc: NodeServices, ref: PodRef, pod_dir: Path, current_pod: Callable[[], JSON]
    ) -> None:
        self.svc = svc
        self.ref = ref
        self.current_pod = current_pod
        spec = current_pod().get("spec") or {}
        self.host_network = bool(spec.get("hostNetwork"))
        self.names = SandboxNames.for_pod(ref.uid)
        self.pod_ip: str | None = None
        self.preferred_ip: str | None = None
        self.net_ready = False
        self.volumes_ready = False
        self.retry_at = 0.0
        self.failures = 0
        self.volumes = PodVolumes(pod_dir / "volumes", svc.lookups, self.token, svc.allocatable)
        self.home = pod_dir / "home"
        self._tokens: dict[tuple[str | None, int], tuple[str, float]] = {}

    @property
    def ready(self) -> bool:
        return self.net_ready and self.volumes_ready

    @property
    def netns(self) -> str | None:
        return None if self.host_network else self.names.netns

    def ensure(self, pod: JSON) -> bool:
        """Create whatever is missing; False (and an event) when it failed."""
        if self.ready:
            return True
        if time.monotonic() < self.retry_at:
            return False
        try:
            if not self.net_ready:
                self._create_network()
            self.home.mkdir(parents=True, exist_ok=True)
            os.chmod(self.home, 0o1777)
            self.volumes.setup(self.pod_with_status(pod))
            self.volumes_ready = True
            self.failures = 0
        except (SandboxError, VolumeError, KubeError, OSError) as exc:
            self.failures += 1
            self.retry_at = time.monotonic() + min(2 ** (self.failures - 1), 10)
            reason = "FailedMount" if self.net_ready else "FailedCreatePodSandBox"
            log.warning("%s for pod %s: %s", reason, self.ref, exc)
            self.svc.events.emit(self.ref, reason, str(exc), warning=True)
        return self.ready

    def _create_network(self) -> None:
        cfg = self.svc.config
        if self.host_network:
            self.pod_ip = cfg.host_ip
            self.net_ready = True
            return
        ip = self.svc.ips.acquire(self.preferred_ip)
        try:
            create_sandbox(
                self.names,
                bridge=cfg.bridge,
                ip=ip,
                prefixlen=self.svc.ips.prefixlen,
                gateway=cfg.host_ip,
            )
        except Exception:
            self.svc.ips.release(ip)
            raise
        self.pod_ip = ip
        self.net_ready = True
        log.info("Created sandbox for pod %s: netns %s, IP %s", self.ref, self.names.netns, ip)

    def teardown(self) -> None:
        """Remove the network namespace and free the IP (volumes stay for the logs' sake)."""
        if self.net_ready and not self.host_network:
            try:
                delete_sandbox(self.names, bridge=self.svc.config.bridge, ip=self.pod_ip)
            except Exception as exc:
                log.warning("Could not remove the sandbox of pod %s: %s", self.ref, exc)
            if self.pod_ip:
                self.svc.ips.release(self.pod_ip)
        self.net_ready = False

    def pod_with_status(self, pod: JSON) -> JSON:
        """The pod as env/downward-API resolution must see it (IPs filled in)."""
        out = copy.deepcopy(pod)
        status = out.setdefault("status", {})
        host_ip = self.svc.config.host_ip
        status.update({"hostIP": host_ip, "hostIPs": [{"ip": host_ip}]})
        if self.pod_ip:
            status.update({"podIP": self.pod_ip, "podIPs": [{"ip": self.pod_ip}]})
        return out

    def refresh_volumes(self, pod: JSON) -> None:
        self.volumes.refresh(self.pod_with_status(pod))

    def token(self, audience: str | None, expiration: int) -> str:
        """A service-account token bound to this pod (TokenRequest), cached until 80% of
        its lifetime."""
        key = (audience, expiration)
        cached = self._tokens.get(key)
        if cached and time.time() < cached[1]:
            return cached[0]
        sa = (self.current_pod().get("spec") or {}).get("serviceAccountName") or "default"
        spec: JSON = {
            "expirationSeconds": expiration,
            "boundObjectRef": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": self.ref.name,
                "uid": self.ref.uid,
            },
        }
        if audience:
            spec["audiences"] = [audience]
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
        path = f"/api/v1/namespaces/{self.ref.namespace}/serviceaccounts/{sa}/token"
        result = self.svc.kube.request("POST", path, body=body)
        token = str(result["status"]["token"])
        now = time.time()
        try:
            expires = parse_rfc3339(result["status"]["expirationTimestamp"])
        except (KeyError, ValueError):
            expires = now + expiration
        refresh_at = now + min((expires - now) * TOKEN_REFRESH_FRACTION, TOKEN_MAX_AGE_SECONDS)
        self._tokens[key] = (token, refresh_at)
        return token
