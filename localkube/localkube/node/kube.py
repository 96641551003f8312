"""A thin JSON client for the apiserver, on top of the `kubernetes` package's transport.

The agent works on plain API-shaped dicts (camelCase, as the API serves them) rather
than generated models: statuses are built and compared as JSON. Authentication,
TLS and connection pooling come from the kubeconfig via `kubernetes.client`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import urllib3
from kubernetes.client import ApiClient, Configuration
from kubernetes.config import load_kube_config

log = logging.getLogger(__name__)

JSON = dict[str, Any]
T = TypeVar("T")

SMP = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"
TRANSIENT = frozenset({0, 429, 500, 502, 503, 504})


class KubeError(Exception):
    """A failed API call; `status` 0 means no HTTP answer (connection problem)."""

    def __init__(self, status: int, reason: str, body: str = "") -> None:
        self.status = status
        self.reason = reason
        self.body = body
        detail = reason
        with contextlib.suppress(ValueError, AttributeError):
            detail = str(json.loads(body).get("message") or reason)
        super().__init__(f"{status} {detail}")

    @property
    def transient(self) -> bool:
        return self.status in TRANSIENT


class Stopped(Exception):
    """The agent is shutting down; abandon the retry loop."""


class Kube:
    """JSON requests against the apiserver named in a kubeconfig."""

    def __init__(self, kubeconfig: Path) -> None:
        cfg = Configuration()
        load_kube_config(
            config_file=str(kubeconfig), client_configuration=cfg, persist_config=False
        )
        cfg.connection_pool_maxsize = 64
        self.client = ApiClient(configuration=cfg)
        self.host: str = cfg.host

    def _send(
        self,
        method: str,
        path: str,
        query: dict[str, str] | None,
        body: Any,
        content_type: str,
        timeout: float | tuple[float, float],
    ) -> Any:
        method, url, headers, body, _ = self.client.param_serialize(
            method=method,
            resource_path=path,
            query_params=list((query or {}).items()),
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            return self.client.call_api(
                method, url, header_params=headers, body=body, _request_timeout=timeout
            )
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeError(0, f"{type(exc).__name__}: {exc}") from exc
        except Exception as exc:
            if getattr(exc, "status", None) == 0:
                raise KubeError(0, str(getattr(exc, "reason", exc))) from exc
            raise

    def request(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float = 30.0,
    ) -> Any:
        resp = self._send(method, path, query, body, content_type, timeout)
        try:
            data: bytes = resp.read()
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeError(0, f"{type(exc).__name__}: {exc}") from exc
        if not 200 <= resp.status < 300:
            raise KubeError(resp.status, str(resp.reason), data.decode("utf-8", "replace"))
        return json.loads(data) if data else None

    def get(self, path: str, *, query: dict[str, str] | None = None) -> Any:
        return self.request("GET", path, query=query)

    def get_or_none(self, path: str) -> Any:
        try:
            return self.request("GET", path)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    def patch(self, path: str, body: Any, content_type: str = SMP) -> Any:
        return self.request("PATCH", path, body=body, content_type=content_type)

    def watch(self, path: str, query: dict[str, str], timeout: float) -> Iterator[JSON]:
        """Events of a watch, one dict each; ends when the server closes the stream."""
        resp = self._send(
            "GET", path, {**query, "watch": "true"}, None, "application/json", (10.0, timeout)
        )
        raw = resp.response
        try:
            if raw.status != 200:
                body = raw.read().decode("utf-8", "replace")
                raise KubeError(raw.status, str(raw.reason), body)
            buffer = b""
            for chunk in raw.stream(65536, decode_content=True):
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise KubeError(0, f"{type(exc).__name__}: {exc}") from exc
        finally:
            raw.release_conn()


def retry(
    fn: Callable[[], T],
    *,
    what: str,
    stop: threading.Event,
    attempts: int = 0,
    cap: float = 10.0,
) -> T:
    """Call `fn`, retrying transient API errors with exponential backoff.

    `attempts` 0 means until `stop` is set. Non-transient errors are raised at once.
    """
    delay = 0.5
    tried = 0
    while True:
        if stop.is_set():
            raise Stopped(what)
        try:
            return fn()
        except KubeError as exc:
            tried += 1
            if not exc.transient or (attempts and tried >= attempts):
                raise
            log.warning("%s failed (%s); retrying in %.1fs", what, exc, delay)
        if stop.wait(delay):
            raise Stopped(what)
        delay = min(delay * 2, cap)


class KubeLookups:
    """`env.Lookups` over the API (404 means "does not exist")."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    def get_secret(self, namespace: str, name: str) -> JSON | None:
        if not name:
            return None
        result: JSON | None = self.kube.get_or_none(
            f"/api/v1/namespaces/{namespace}/secrets/{name}"
        )
        return result

    def get_config_map(self, namespace: str, name: str) -> JSON | None:
        if not name:
            return None
        result: JSON | None = self.kube.get_or_none(
            f"/api/v1/namespaces/{namespace}/configmaps/{name}"
        )
        return result

    def get_persistent_volume_claim(self, namespace: str, name: str) -> JSON | None:
        if not name:
            return None
        result: JSON | None = self.kube.get_or_none(
            f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{name}"
        )
        return result

    def get_persistent_volume(self, name: str) -> JSON | None:
        if not name:
            return None
        result: JSON | None = self.kube.get_or_none(f"/api/v1/persistentvolumes/{name}")
        return result
