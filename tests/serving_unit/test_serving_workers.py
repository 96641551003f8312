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
from contextlib import contextmanager
from pathlib import Path

import httpx
import pandas as pd
import pytest

from mlcycle_contract.drift import DRIFT_PATH, DriftWindow, WorkerCounts
from tests.serving_unit.test_serving_drift import iris_with_reference

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


@contextmanager
def _two_workers(
    model_dir: Path, tmp_path: Path, **settings: str
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = _free_port()
    environ = {
        **os.environ,
        "MLCYCLE_MODEL_URI": str(model_dir),
        "MLCYCLE_MODEL_NAME": "iris",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "MLCYCLE_WORKERS": "2",
        **settings,
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


@pytest.fixture
def two_workers(
    iris_model_dir: Path, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    with _two_workers(iris_model_dir, tmp_path, MLCYCLE_SHUTDOWN_DELAY_SECONDS="10") as started:
        yield started


def _get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url)  # a new connection each time
    except httpx.TransportError:
        return None


def _worker_pids(base: str) -> set[int]:
    """The pids of both workers, once each has answered."""
    pids: set[int] = set()

    def both_answered() -> bool:
        response = _get(f"{base}/version")
        if response is not None:
            pids.add(response.json()["server"]["pid"])
        return len(pids) == 2

    _eventually("both workers to answer", both_answered)
    return pids


def test_two_workers_answer_on_one_port_and_drain_once_on_a_group_sigterm(
    two_workers: tuple[subprocess.Popen[bytes], str],
) -> None:
    server, base = two_workers
    assert server.pid not in _worker_pids(base)

    os.killpg(server.pid, signal.SIGTERM)

    def not_ready() -> bool:
        response = _get(f"{base}/v2/health/ready")
        return response is not None and response.status_code == 503

    _eventually("readiness to fail", not_ready)
    # Still serving while endpoints move away: the group's SIGTERM did not count twice.
    response = httpx.post(f"{base}/v1/models/iris:predict", json={"instances": [ROW]})
    assert response.json() == {"predictions": [0]}
    assert server.wait(timeout=120) == 0


def test_drift_of_two_workers_counts_the_rows_both_received(
    iris_model_dir: Path, tmp_path: Path, iris: tuple[pd.DataFrame, pd.Series]
) -> None:
    features, _ = iris
    model_dir = iris_with_reference(tmp_path, iris_model_dir, features)
    temporary = tmp_path / "tmp"  # where the supervisor makes the workers' shared directory
    temporary.mkdir()
    rows = features.to_numpy()[:40].tolist()
    with _two_workers(model_dir, tmp_path, MLCYCLE_DRIFT="true", TMPDIR=str(temporary)) as (
        server,
        base,
    ):
        _worker_pids(base)
        for row in rows:  # a new connection each: the kernel spreads them over both workers
            assert httpx.post(f"{base}/invocations", json={"inputs": [row]}).status_code == 200
        published: list[int] = []

        def both_published() -> bool:
            published[:] = [
                WorkerCounts.model_validate_json(path.read_bytes()).counts.rows
                for path in temporary.glob("mlcycle-drift-*/worker-*.json")
            ]
            return sum(published) == len(rows)

        _eventually("both workers to publish their rows", both_published, timeout=10)
        assert len(published) == 2 and min(published) > 0, published
        for _ in range(6):  # whichever worker answers
            window = DriftWindow.model_validate(httpx.get(f"{base}{DRIFT_PATH}").json())
            assert window.counts.rows == len(rows)
            metrics = httpx.get(f"{base}/metrics").text
            assert f"mlcycle_serving_drift_window_rows {len(rows)}.0" in metrics
        os.killpg(server.pid, signal.SIGTERM)
        assert server.wait(timeout=120) == 0
    assert list(temporary.iterdir()) == []  # the supervisor removed the shared directory
