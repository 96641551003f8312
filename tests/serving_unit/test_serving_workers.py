"""`MLCYCLE_WORKERS=2`: the real entry point, two worker processes on one port, and a
SIGTERM to the whole process group (as local runtimes send it) draining them once."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

ROW = [5.1, 3.5, 1.4, 0.2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _eventually(what: str, check: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.1)


@pytest.fixture
def two_workers(
    iris_model_dir: Path, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = _free_port()
    environ = {
        **os.environ,
        "MLCYCLE_MODEL_URI": str(iris_model_dir),
        "MLCYCLE_MODEL_NAME": "iris",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "MLCYCLE_WORKERS": "2",
        "MLCYCLE_SHUTDOWN_DELAY_SECONDS": "10",
    }
    with (tmp_path / "server.log").open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "mlcycle_serving"],
            env=environ,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield server, f"http://127.0.0.1:{port}"
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
        server.wait()


def _get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url)  # a new connection each time
    except httpx.TransportError:
        return None


def test_two_workers_answer_on_one_port_and_drain_once_on_a_group_sigterm(
    two_workers: tuple[subprocess.Popen[bytes], str],
) -> None:
    server, base = two_workers
    pids: set[int] = set()

    def both_answered() -> bool:
        response = _get(f"{base}/version")
        if response is not None:
            pids.add(response.json()["server"]["pid"])
        return len(pids) == 2

    _eventually("both workers to answer", both_answered)
    assert server.pid not in pids

    os.killpg(server.pid, signal.SIGTERM)

    def not_ready() -> bool:
        response = _get(f"{base}/v2/health/ready")
        return response is not None and response.status_code == 503

    _eventually("readiness to fail", not_ready)
    # Still serving while endpoints move away: the group's SIGTERM did not count twice.
    response = httpx.post(f"{base}/v1/models/iris:predict", json={"instances": [ROW]})
    assert response.json() == {"predictions": [0]}
    assert server.wait(timeout=120) == 0
