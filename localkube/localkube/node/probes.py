"""Startup, liveness and readiness probes of one container instance.

Handlers: httpGet and tcpSocket connect from the host to the pod IP (the bridge
makes it reachable), exec runs inside the container's namespaces. Semantics follow
the kubelet's prober: startup first (liveness and readiness wait for it), delays
counted from the container start, consecutive-result thresholds.
"""

from __future__ import annotations

import http.client
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .runtime import ContainerProcess, exec_in_container

log = logging.getLogger(__name__)

JSON = dict[str, Any]
USER_AGENT = "kube-probe/1.36"


@dataclass(frozen=True)
class ProbeSettings:
    handler: JSON
    initial_delay: float
    period: float
    timeout: float
    success_threshold: int
    failure_threshold: int

    @classmethod
    def parse(cls, probe: JSON | None) -> ProbeSettings | None:
        if not probe:
            return None
        return cls(
            handler=probe,
            initial_delay=float(probe.get("initialDelaySeconds") or 0),
            period=float(probe.get("periodSeconds") or 10),
            timeout=float(probe.get("timeoutSeconds") or 1),
            success_threshold=int(probe.get("successThreshold") or 1),
            failure_threshold=int(probe.get("failureThreshold") or 3),
        )


def resolve_port(port: Any, container: JSON) -> int:
    """A probe port: a number, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    text = str(port)
    if text.isdigit():
        return int(text)
    for p in container.get("ports") or []:
        if p.get("name") == text:
            return int(p["containerPort"])
    raise ValueError(f"port {text!r} not found in container ports")


def probe_http(host: str, port: int, get: JSON, timeout: float) -> tuple[bool, str]:
    scheme = str(get.get("scheme") or "HTTP").upper()
    path = str(get.get("path") or "/")
    if not path.startswith("/"):
        path = "/" + path
    url = f"{scheme.lower()}://{host}:{port}{path}"
    conn: http.client.HTTPConnection
    if scheme == "HTTPS":
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=ctx)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    headers = {"User-Agent": USER_AGENT, "Accept": "*/*"}
    for h in get.get("httpHeaders") or []:
        headers[str(h.get("name"))] = str(h.get("value", ""))
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        resp.read(10240)
        if 200 <= resp.status < 400:
            return True, ""
        return False, f"HTTP probe failed with statuscode: {resp.status}"
    except (OSError, http.client.HTTPException) as exc:
        return False, f'Get "{url}": {exc}'
    finally:
        conn.close()


def probe_tcp(host: str, port: int, timeout: float) -> tuple[bool, str]:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True, ""
    except OSError as exc:
        return False, f"dial tcp {host}:{port}: {exc}"


class Prober:
    """Runs the probes of one container instance in a thread of its own."""

    def __init__(
        self,
        container: JSON,
        proc: ContainerProcess,
        *,
        host: str,
        python: str,
        on_change: Callable[[], None],
        on_failure: Callable[[str, str], None],
    ) -> None:
        self.container = container
        self.proc = proc
        self.host = host
        self.python = python
        self.on_change = on_change
        self.on_failure = on_failure
        self.startup = ProbeSettings.parse(container.get("startupProbe"))
        self.liveness = ProbeSettings.parse(container.get("livenessProbe"))
        self.readiness = ProbeSettings.parse(container.get("readinessProbe"))
        self.started = self.startup is None
        self.ready = self.readiness is None and self.started
        self.failed: str | None = None
        self._start = time.monotonic()
        self._stop = threading.Event()
        self._warned: set[str] = set()
        self._thread: threading.Thread | None = None

    @property
    def needed(self) -> bool:
        return any((self.startup, self.liveness, self.readiness))

    def start(self) -> None:
        if self.needed:
            self._thread = threading.Thread(
                target=self._run, name=f"probe {self.proc.label}", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _done(self) -> bool:
        return self._stop.is_set() or not self.proc.running or self.failed is not None

    def run_once(self, settings: ProbeSettings) -> tuple[bool, str]:
        h = settings.handler
        try:
            if "httpGet" in h:
                get = h["httpGet"] or {}
                port = resolve_port(get.get("port"), self.container)
                return probe_http(str(get.get("host") or self.host), port, get, settings.timeout)
            if "tcpSocket" in h:
                sock = h["tcpSocket"] or {}
                port = resolve_port(sock.get("port"), self.container)
                return probe_tcp(str(sock.get("host") or self.host), port, settings.timeout)
            if "exec" in h:
                command = [str(c) for c in (h["exec"] or {}).get("command") or []]
                code, out = exec_in_container(
                    self.proc, command, timeout=settings.timeout, python=self.python
                )
                if code == -1:
                    return False, f"command timed out after {settings.timeout:g}s"
                if code != 0:
                    text = out.decode("utf-8", "replace").strip()[-512:]
                    return False, f"command exited with {code}: {text}" if text else f"exit {code}"
                return True, ""
        except ValueError as exc:
            return False, str(exc)
        kind = next((k for k in h if k not in _SETTINGS_KEYS), "unknown")
        if kind not in self._warned:
            self._warned.add(kind)
            log.warning(
                "%s: %s probes are not supported; treating them as passing", self.proc.label, kind
            )
        return True, ""

    def _run(self) -> None:
        if self.startup is not None and not self._run_startup(self.startup):
            return
        started = time.monotonic()
        plans = [
            (name, s)
            for name, s in (("Liveness", self.liveness), ("Readiness", self.readiness))
            if s is not None
        ]
        due = {name: max(started, self._start + s.initial_delay) for name, s in plans}
        counts = {name: [0, 0] for name, _ in plans}  # consecutive successes, failures
        while not self._done():
            now = time.monotonic()
            for name, s in plans:
                if now < due[name] or self._done():
                    continue
                due[name] = now + s.period
                ok, detail = self.run_once(s)
                self._record(name, s, ok, detail, counts[name])
            wait = min(due.values(), default=now + 1.0) - time.monotonic()
            self._stop.wait(max(0.05, min(wait, 1.0)))

    def _record(self, name: str, s: ProbeSettings, ok: bool, detail: str, c: list[int]) -> None:
        if self._done():
            return
        c[0], c[1] = (c[0] + 1, 0) if ok else (0, c[1] + 1)
        if not ok:
            self.on_failure("Unhealthy", f"{name} probe failed: {detail}")
        if name == "Readiness":
            if ok and c[0] >= s.success_threshold and not self.ready:
                self.ready = True
                self.on_change()
            elif not ok and c[1] >= s.failure_threshold and self.ready:
                self.ready = False
                self.on_change()
        elif not ok and c[1] >= s.failure_threshold:
            self.failed = (
                f"Container {self.container.get('name')} failed liveness probe, will be restarted"
            )
            self.on_change()

    def _run_startup(self, s: ProbeSettings) -> bool:
        due = self._start + s.initial_delay
        failures = 0
        while not self._done():
            if time.monotonic() < due:
                self._stop.wait(max(0.05, min(due - time.monotonic(), 1.0)))
                continue
            due = time.monotonic() + s.period
            ok, detail = self.run_once(s)
            if self._done():
                return False
            if ok:
                self.started = True
                self.ready = self.readiness is None
                self.on_change()
                return True
            failures += 1
            self.on_failure("Unhealthy", f"Startup probe failed: {detail}")
            if failures >= s.failure_threshold:
                name = self.container.get("name")
                self.failed = f"Container {name} failed startup probe, will be restarted"
                self.on_change()
                return False
        return False


_SETTINGS_KEYS = frozenset(
    {
        "initialDelaySeconds",
        "periodSeconds",
        "timeoutSeconds",
        "successThreshold",
        "failureThreshold",
        "terminationGracePeriodSeconds",
    }
)
