"""The three servers: how each is started, what it is sent, and running one at a time.

Every server runs one worker on 127.0.0.1 and gets its native protocol with the same
rows: ours KServe V1 (`/v1/models/<name>:predict`, `instances`), the same body KServe
gets; MLflow `/invocations` with `inputs`, its fastest format. A server starts in a
new session (its own process group), so stopping it stops its whole tree.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from bench.serving.models import BenchModel, Payload
from bench.serving.procfs import PeakRss

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parents[2]
SERVERS = ("ours", "mlflow", "kserve")
STRIPPED_ENV_PREFIXES = ("MLFLOW_", "AWS_", "MLCYCLE_", "KSERVE_")
"""Inherited settings dropped so no server reaches a tracking server or reads stray config."""


class ServerError(RuntimeError):
    """A server did not start, answered wrongly, or died."""


@dataclass(frozen=True)
class ServerSpec:
    key: str
    title: str
    protocol: str
    argv: list[str]
    env: dict[str, str]
    path: str
    body_key: str

    def body(self, payload: Payload) -> bytes:
        return payload.body(self.body_key)


@dataclass(frozen=True)
class Tools:
    """Interpreters and executables the specs need."""

    project_bin: Path
    kserve_python: Path
    kserve_script: Path


# Run by each server's interpreter: its own site-packages, then the trees named after it.
COMPILE = """
import compileall, sys, sysconfig
for tree in (sysconfig.get_paths()["purelib"], *sys.argv[1:]):
    compileall.compile_dir(tree, quiet=1, workers=0)
"""


def compile_bytecode(tools: Tools) -> None:
    """Compile every server's packages and our server's sources to bytecode, as the images
    are at build. With PYTHONDONTWRITEBYTECODE set (the images set it, and so may the shell
    running this) a server would otherwise compile each module it imports at every start,
    and its cold start would time the compiler. Up-to-date files cost nothing."""
    project = tools.project_bin / "python"
    trees = {project: [str(REPO / "serving_image"), str(REPO / "contract")]}
    trees.setdefault(tools.kserve_python, [])
    for python, sources in trees.items():
        subprocess.run([str(python), "-c", COMPILE, *sources], check=True, timeout=900)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _base_env(tools: Tools) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(STRIPPED_ENV_PREFIXES)}
    env["PATH"] = f"{tools.project_bin}{os.pathsep}{env.get('PATH', '')}"  # MLflow's uvicorn
    return env


def build_spec(key: str, model: BenchModel, port: int, tools: Tools) -> ServerSpec:
    """How to run server `key` over `model` on `port` (pure)."""
    env = _base_env(tools)
    if key == "ours":
        env.update(
            MLCYCLE_MODEL_URI=str(model.mlflow_dir),
            MLCYCLE_MODEL_NAME=model.key,
            HOST=HOST,
            PORT=str(port),
            MLCYCLE_SHUTDOWN_DELAY_SECONDS="0",
        )
        return ServerSpec(
            key=key,
            title="mlcycle_serving",
            protocol="KServe V1 `POST /v1/models/<name>:predict`, `instances`",
            argv=[str(tools.project_bin / "python"), "-m", "mlcycle_serving"],
            env=env,
            path=f"/v1/models/{model.key}:predict",
            body_key="instances",
        )
    if key == "mlflow":
        return ServerSpec(
            key=key,
            title="mlflow models serve",
            protocol="MLflow `POST /invocations`, `inputs`",
            argv=[
                str(tools.project_bin / "mlflow"),
                *("models", "serve", "-m", str(model.mlflow_dir), "--env-manager", "local"),
                *("-p", str(port), "-h", HOST, "--workers", "1"),
            ],
            env=env,
            path="/invocations",
            body_key="inputs",
        )
    if key == "kserve":
        return ServerSpec(
            key=key,
            title="KServe ModelServer (sklearn)",
            protocol="KServe V1 `POST /v1/models/<name>:predict`, `instances`",
            argv=[
                str(tools.kserve_python),
                str(tools.kserve_script),
                *("--model_dir", str(model.joblib_dir), "--model_name", model.key),
                *("--http_port", str(port), "--workers", "1", "--enable_grpc", "false"),
            ],
            env=env,
            path=f"/v1/models/{model.key}:predict",
            body_key="instances",
        )
    raise ValueError(f"unknown server {key!r}")


def post(port: int, path: str, body: bytes, timeout: float = 30) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("POST", path, body, {"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def predictions(status: int, body: bytes) -> list[int]:
    if status != 200:
        raise ServerError(f"HTTP {status}: {body[:300]!r}")
    values = json.loads(body)["predictions"]
    return [int(v) for v in values]


@dataclass
class RunningServer:
    spec: ServerSpec
    port: int
    process: subprocess.Popen[bytes]
    rss: PeakRss
    log_path: Path
    cold_start_s: float = 0.0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}{self.spec.path}"

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def check(self, payload: Payload) -> None:
        """The server returns exactly the expected predictions for `payload`."""
        got = predictions(*post(self.port, self.spec.path, self.spec.body(payload)))
        if got != payload.expected:
            raise ServerError(
                f"{self.spec.key}: {payload.rows}-row predictions differ: {got[:10]}... "
                f"expected {payload.expected[:10]}..."
            )

    def wait_first_prediction(self, payload: Payload, started: float, timeout_s: float) -> float:
        """Seconds from `started` (just before the process was spawned) to the first
        correct prediction; polls every 10 ms."""
        deadline = started + timeout_s
        body = self.spec.body(payload)
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerError(f"{self.spec.key} exited:\n{self.log_tail()}")
            try:
                status, answer = post(self.port, self.spec.path, body, timeout=10)
            except OSError:
                status, answer = 0, b""
            if status == 200:
                elapsed = time.monotonic() - started
                if predictions(status, answer) != payload.expected:
                    raise ServerError(f"{self.spec.key}: wrong first predictions: {answer!r}")
                return elapsed
            time.sleep(0.01)
        raise ServerError(f"{self.spec.key} gave no prediction in {timeout_s}s:\n{self.log_tail()}")

    def stop(self, timeout_s: float = 30) -> None:
        """SIGTERM to the process group, SIGKILL after `timeout_s`."""
        for sig, wait in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 10.0)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        # The leader may be gone while a child lingers: make sure the group is gone.
        with suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.rss.stop()


@contextmanager
def running(
    spec: ServerSpec, port: int, probe: Payload, log_dir: Path, timeout_s: float = 180
) -> Iterator[RunningServer]:
    """Start `spec`, wait for its first correct prediction (the cold start), stop it after."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{spec.key}.log"
    with log_path.open("wb") as log:
        started = time.monotonic()
        process = subprocess.Popen(
            spec.argv,
            env=spec.env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    rss = PeakRss(process.pid)
    rss.start()
    server = RunningServer(spec, port, process, rss, log_path)
    try:
        server.cold_start_s = server.wait_first_prediction(probe, started, timeout_s)
        yield server
    finally:
        server.stop()
