"""`MLCYCLE_WORKERS` > 1: start that many worker processes on the one port and watch them.

Each worker (`server.serve_worker`) is a fresh interpreter (multiprocessing's `spawn`: no
fork of a process already running threads) with its own model, batcher and event loop.
The supervisor passes each SIGTERM or SIGINT it receives to every worker through a pipe,
so a worker drains exactly as the one-process server does. If a worker ends before
shutdown was asked for (its model failed to load, it crashed), the supervisor closes the
others' pipes, which stops them, and exits 1, so Kubernetes restarts the container.
With drift monitoring on, it makes the directory where the workers share their drift counts
(`pod_drift`), and removes it once they are done.
"""

from __future__ import annotations

import logging
import multiprocessing
import shutil
import signal
import tempfile
from contextlib import suppress
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from types import FrameType

from mlcycle_serving.server import Launch, serve_worker

logger = logging.getLogger("mlcycle_serving")


def supervise(launch: Launch) -> int:
    """Run `launch.settings.workers` workers until they stop; 1 if one failed. With drift
    monitoring on, they share their counts in a directory of their own (under the temporary
    directory: the Pod's writable /tmp), removed when they are done."""
    if not launch.settings.drift.enabled:
        return _supervise(launch, None)
    drift_dir = tempfile.mkdtemp(prefix="mlcycle-drift-")
    try:
        return _supervise(launch, drift_dir)
    finally:
        shutil.rmtree(drift_dir, ignore_errors=True)


def _supervise(launch: Launch, drift_dir: str | None) -> int:
    context = multiprocessing.get_context("spawn")
    workers: dict[int, tuple[BaseProcess, Connection]] = {}
    stopping = False

    def forward(sig: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for _, sender in workers.values():
            with suppress(OSError):
                sender.send_bytes(signal.Signals(sig).name.encode())

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    for index in range(launch.settings.workers):
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(
            target=serve_worker,
            args=(launch, index, receiver, drift_dir),
            name=f"worker-{index}",
        )
        process.start()
        receiver.close()
        workers[process.sentinel] = (process, sender)
        logger.info("Started worker", extra={"worker": index, "pid": process.pid})
        if stopping:  # a signal came before this worker had a pipe: it stops once loaded
            sender.close()
    failed = False
    while workers:
        for sentinel in wait(list(workers)):
            assert isinstance(sentinel, int)
            ended, sender = workers.pop(sentinel)
            ended.join()
            sender.close()
            if stopping:
                continue
            logger.error(
                "Worker ended before shutdown; stopping the others",
                extra={"pid": ended.pid, "exit_code": ended.exitcode},
            )
            failed = stopping = True
            for _, other in workers.values():
                other.close()
    logger.info("All workers stopped")
    return 1 if failed else 0
