"""What the chart's end-to-end tests need besides the cluster: the Helm CLI, and a relay that
stands in for kube-proxy for the chart's MLflow and MinIO Services.

The local cluster has no kube-proxy and no DNS, so a Service name or ClusterIP routes
nowhere. The chart takes explicit URLs (`mlflow.trackingURI`, `s3.endpoint`) for exactly
such networks, and the tests point them at a `ServiceRelay`: a TCP listener on the bridge
address that, for every connection, reads the Service's EndpointSlices (kept by the real
endpoint-slice controller from the real pods' readiness) and forwards to a ready endpoint,
as kube-proxy does. So the Services, their selectors and their ports are exercised, and a
restarted pod with a new IP is followed.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import socketserver
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from localkube import build, processes

CHART = Path(__file__).resolve().parents[2] / "charts" / "mlcycle"


@dataclass(frozen=True)
class Helm:
    """The Helm CLI against the local cluster, with its caches in a private directory."""

    binary: Path
    kubeconfig: Path
    home: Path

    @classmethod
    def create(cls, kubeconfig: Path, home: Path) -> Helm:
        return cls(build.ensure_binaries(["helm"])["helm"], kubeconfig, home)

    def run(self, *args: str, check: bool = True,
            timeout: float = 600) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
        }
        completed = subprocess.run(
            [str(self.binary), "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True, text=True, env=env, timeout=timeout,
        )
        if check and completed.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{completed.stdout}\n"
                                 f"{completed.stderr}")
        return completed

    def template(self, release: str, namespace: str, *values: str) -> list[dict[str, Any]]:
        out = self.run("template", release, str(CHART), "--namespace", namespace, *values).stdout
        return [doc for doc in yaml.safe_load_all(out) if doc]


def ready_endpoint(k8s: client.ApiClient, namespace: str, service: str,
                   port_name: str) -> tuple[str, int] | None:
    """A ready address and the target port of the Service's named port, or None."""
    slices = client.DiscoveryV1Api(k8s).list_namespaced_endpoint_slice(
        namespace, label_selector=f"kubernetes.io/service-name={service}").items
    candidates = []
    for endpoint_slice in slices:
        port = next((p.port for p in endpoint_slice.ports or [] if p.name == port_name), None)
        for endpoint in endpoint_slice.endpoints or []:
            if port is not None and endpoint.conditions and endpoint.conditions.ready:
                candidates.extend((address, int(port)) for address in endpoint.addresses)
    return random.choice(candidates) if candidates else None


class _Relay(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class ServiceRelay:
    """host:port on the bridge -> a ready endpoint of one Service, chosen per connection."""

    def __init__(self, k8s: client.ApiClient, host: str, namespace: str, service: str,
                 port_name: str) -> None:
        self.host = host
        self.port = processes.free_port(host)
        lookup = (k8s, namespace, service, port_name)

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                target = ready_endpoint(*lookup)
                if target is None:
                    return  # no ready endpoint: the connection is refused, as by kube-proxy
                with contextlib.suppress(OSError), \
                        socket.create_connection(target, timeout=10) as upstream:
                    upstream.settimeout(None)
                    _pump_both(self.request, upstream)

        self.server = _Relay((host, self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       name=f"relay {namespace}/{service}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> ServiceRelay:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _pump_both(downstream: socket.socket, upstream: socket.socket) -> None:
    def pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    other = threading.Thread(target=pump, args=(upstream, downstream), daemon=True)
    other.start()
    pump(downstream, upstream)
    other.join()


HELM_KEYS = {
    "annotations": ("meta.helm.sh/release-name", "meta.helm.sh/release-namespace",
                    "helm.sh/resource-policy"),
    "labels": ("helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/name",
               "app.kubernetes.io/instance", "app.kubernetes.io/version",
               "app.kubernetes.io/part-of"),
}


def hand_crds_back(k8s: client.ApiClient, names: list[str]) -> None:
    """Undo a test release's ownership of the shared cluster's CRDs (installed by the harness
    with `kubectl apply --server-side`): Helm's field manager and labels go, so the harness's
    next apply of a changed schema meets no conflict."""
    api = client.ApiextensionsV1Api(k8s)
    for name in names:
        crd = k8s.sanitize_for_serialization(api.read_custom_resource_definition(name))
        metadata = crd["metadata"]
        kept = [entry for entry in metadata.get("managedFields") or []
                if entry.get("manager") != "helm"]
        operations: list[dict[str, Any]] = [
            {"op": "replace", "path": "/metadata/managedFields", "value": kept or [{}]}]
        for section, keys in HELM_KEYS.items():
            for key in keys:
                if key in (metadata.get(section) or {}):
                    escaped = key.replace("~", "~0").replace("/", "~1")
                    operations.append({"op": "remove", "path": f"/metadata/{section}/{escaped}"})
        api.patch_custom_resource_definition(name, operations)
