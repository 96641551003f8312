"""The app under uvicorn: the whole server in one process, or one of several workers.

`serve()` is the one-process server: HTTP first, the model loads in the background, so
liveness answers while a large model downloads. `serve_worker()` is one of the processes
`supervisor` starts: it loads its model first and only then listens, on a socket of its
own bound with SO_REUSEPORT, so the kernel spreads new connections over the workers that
can answer and never hands one to a worker still loading.

Either way a `DrainingServer` shuts down in two steps: readiness fails while requests go
on for the shutdown delay, then in-flight requests finish. With drift monitoring on,
workers share their drift counts through files (`pod_drift`), so /drift answers the Pod's.
"""

from __future__ import annotations

import dataclasses
import logging
import logging.config
import os
import signal
import socket
import sys
import threading
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from types import FrameType

import uvicorn
from prometheus_client import disable_created_metrics

from mlcycle_serving.app import ServingApp, create_app
from mlcycle_serving.hidden_imports import leave_out_arrow
from mlcycle_serving.logs import uvicorn_log_config
from mlcycle_serving.model import Model
from mlcycle_serving.pod_drift import PodDrift
from mlcycle_serving.settings import ServerSettings

logger = logging.getLogger("mlcycle_serving")


@dataclass(frozen=True)
class Launch:
    """How to run the server; what `supervisor` hands each worker process."""

    settings: ServerSettings
    http: str
    """uvicorn's HTTP parser: `httptools` or `h11`."""
    loop: str
    """uvicorn's event loop: `uvloop` or `asyncio`."""


class DrainingServer(uvicorn.Server):
    """On the first SIGTERM, report not-ready and keep serving for the shutdown delay, so
    clients and endpoint lists move away before the listener closes; then shut down
    gracefully, finishing in-flight requests. A second signal starts that at once."""

    def __init__(self, config: uvicorn.Config, app: ServingApp, delay_seconds: float) -> None:
        super().__init__(config)
        self.app = app
        self.delay_seconds = delay_seconds

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.drain()

    def drain(self) -> None:
        if self.app.draining or self.delay_seconds <= 0:
            self.should_exit = True
            return
        self.app.draining = True
        logger.info("Draining before shutdown", extra={"delay_seconds": self.delay_seconds})
        timer = threading.Timer(self.delay_seconds, self.drain)
        timer.daemon = True
        timer.start()


class WorkerServer(DrainingServer):
    """A worker drains when its supervisor says so, once per signal the supervisor got.

    Signals to the worker itself are ignored: a runtime that signals the whole process
    group (local ones do; Kubernetes signals only the container's first process) would
    otherwise deliver each one twice, and the second would cut the drain short."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        pass

    def follow(self, supervisor: Connection) -> None:
        while True:
            try:
                supervisor.recv_bytes()
            except (EOFError, OSError):  # the supervisor is gone, or gave up on this worker
                self.should_exit = True
                return
            self.drain()


def _config(app: ServingApp, launch: Launch) -> uvicorn.Config:
    settings = launch.settings
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        http=launch.http,
        loop=launch.loop,
        lifespan="on",
        log_config=uvicorn_log_config(settings.log_level),
        access_log=False,
        server_header=False,
    )


def serve(launch: Launch) -> int:
    """Run the one-process server until it is stopped; 1 if the model failed to load."""
    leave_out_arrow()
    settings = launch.settings
    model = Model(settings.model_uri, settings.model_name, settings.model_download_dir)
    failed = False
    server: DrainingServer | None = None

    def on_load_error(_exc: BaseException) -> None:
        nonlocal failed
        failed = True
        if server is not None:
            server.should_exit = True

    app = create_app(model, settings, on_load_error)
    server = DrainingServer(_config(app, launch), app, settings.shutdown_delay_seconds)
    server.run()
    return 1 if failed else 0


def _reuse_port_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def serve_worker(
    launch: Launch, index: int, supervisor: Connection, drift_dir: str | None = None
) -> None:
    """Worker `index` (a process `supervisor` spawned): load, listen, serve until told.
    With `drift_dir` (drift monitoring on), it shares its drift counts with its siblings
    there, so /drift answers the Pod's (`pod_drift`)."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)  # see WorkerServer
    leave_out_arrow()
    settings = launch.settings
    logging.config.dictConfig(uvicorn_log_config(settings.log_level))
    disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series
    if settings.model_download_dir:  # one directory each: workers download at the same time
        download_dir = os.path.join(settings.model_download_dir, f"worker-{index}")
        settings = dataclasses.replace(settings, model_download_dir=download_dir)
    model = Model(settings.model_uri, settings.model_name, settings.model_download_dir)
    try:
        model.load()
    except Exception:
        logger.exception("Model failed to load", extra={"uri": model.uri, "worker": index})
        sys.exit(1)
    app = create_app(model, settings)
    if drift_dir is not None and app.drift is not None:
        app.pod_drift = PodDrift(app.drift, Path(drift_dir), index)
        threading.Thread(target=app.pod_drift.publish_every, name="drift", daemon=True).start()
    server = WorkerServer(_config(app, launch), app, settings.shutdown_delay_seconds)
    threading.Thread(target=server.follow, args=(supervisor,), daemon=True).start()
    server.run(sockets=[_reuse_port_socket(settings.host, settings.port)])
