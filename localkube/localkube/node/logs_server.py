"""The kubelet API subset the apiserver proxies to: container logs and /healthz.

HTTPS on `host_ip:kubelet_port` with the node's serving certificate. Log requests
must present a client certificate signed by the cluster CA (the apiserver's
kubelet client certificate); /healthz is open.

`GET /containerLogs/{namespace}/{pod}/{container}` honours `follow`, `tailLines`,
`limitBytes`, `previous`, `timestamps`, `sinceSeconds` and `sinceTime`.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from . import logfiles
from .clock import parse_rfc3339

log = logging.getLogger(__name__)

FOLLOW_POLL_SECONDS = 0.2
UNSUPPORTED = frozenset({"exec", "attach", "portForward", "run", "stats", "metrics", "pods"})


class LogSource(Protocol):
    def log_target(
        self, namespace: str, pod: str, container: str, previous: bool
    ) -> tuple[Path, Callable[[], bool]]:
        """The file and an "is it still growing" function; raises LookupError (404)
        or ValueError (400) with a message for the client."""
        ...


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        ctx: ssl.SSLContext,
        source: LogSource,
        stop: threading.Event,
    ) -> None:
        self.ctx = ctx
        self.source = source
        self.stop = stop
        super().__init__(address, _Handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        # TLS handshake in the per-connection thread, so a slow client cannot block accept().
        try:
            tls = self.ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            log.debug("TLS handshake with %s failed: %s", client_address, exc)
            return
        try:
            super().finish_request(tls, client_address)
        finally:
            with contextlib.suppress(OSError):
                tls.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "localkube-kubelet"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("kubelet API %s: " + format, self.client_address[0], *args)

    def _answer(self, code: int, text: str) -> None:
        data = (text + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path in ("/healthz", "/healthz/ping"):
            self._answer(200, "ok")
            return
        parts = [unquote(p) for p in url.path.split("/") if p]
        if parts and parts[0] in UNSUPPORTED:
            self._answer(
                501,
                f"{parts[0]} is not supported by the localkube node agent "
                "(only container logs are)",
            )
            return
        if len(parts) != 4 or parts[0] != "containerLogs":
            self._answer(404, f"404 page not found: {url.path}")
            return
        if not self.connection.getpeercert():
            self._answer(
                401, "Unauthorized: a client certificate signed by the cluster CA is required"
            )
            return
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self._logs(parts[1], parts[2], parts[3], query)

    def _logs(self, namespace: str, pod: str, container: str, q: dict[str, str]) -> None:
        def flag(name: str) -> bool:
            return q.get(name, "false").lower() in ("true", "1")

        try:
            tail = int(q["tailLines"]) if "tailLines" in q else -1
            limit = int(q["limitBytes"]) if "limitBytes" in q else -1
            since = None
            if "sinceSeconds" in q:
                since = time.time() - int(q["sinceSeconds"])
            elif "sinceTime" in q:
                since = parse_rfc3339(q["sinceTime"])
        except ValueError as exc:
            self._answer(400, f"invalid query: {exc}")
            return
        try:
            path, active = self.server.source.log_target(
                namespace, pod, container, flag("previous")
            )
        except LookupError as exc:
            self._answer(404, str(exc.args[0] if exc.args else exc))
            return
        except ValueError as exc:
            self._answer(400, str(exc))
            return
        timestamps, follow = flag("timestamps"), flag("follow")
        records, offset = logfiles.read_records(path)
        if since is not None:
            records = logfiles.since(records, since)
        records = logfiles.tail_lines(records, tail)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Connection", "close")
        self.end_headers()
        data, continuing = logfiles.render(records, timestamps)
        remaining = self._write(data, limit)
        while follow and remaining != 0 and not self.server.stop.is_set():
            growing = active()
            records, offset = logfiles.read_records(path, offset)
            if records:
                data, continuing = logfiles.render(records, timestamps, continuing)
                remaining = self._write(data, remaining)
            elif not growing:
                break
            else:
                time.sleep(FOLLOW_POLL_SECONDS)

    def _write(self, data: bytes, remaining: int) -> int:
        if remaining >= 0:
            data = data[:remaining]
            remaining -= len(data)
        if data:
            self.wfile.write(data)
            self.wfile.flush()
        return remaining


class KubeletServer:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        cert_file: Path,
        key_file: Path,
        ca_file: Path,
        source: LogSource,
        stop: threading.Event,
    ) -> None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert_file), str(key_file))
        ctx.load_verify_locations(str(ca_file))
        ctx.verify_mode = ssl.CERT_OPTIONAL
        self._server = _Server((host, port), ctx, source, stop)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="kubelet-api", daemon=True
        )
        self.address = f"{host}:{port}"

    def start(self) -> None:
        self._thread.start()
        log.info("Serving the kubelet API (logs) on https://%s", self.address)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
