"""Start, watch and stop the harness's long-running processes.

Each process gets its own session (process group), so stopping it also stops whatever
it started, and its output goes to a log file under `.local/logs/`.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serving_http(host: str, handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """`handler` served from a thread on `host` (the bridge address, for the cluster's Pods
    to reach), until the block ends: its base URL."""
    server = http.server.ThreadingHTTPServer((host, free_port(host)), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def start(argv: list[str], log_file: Path, env: dict[str, str] | None = None) -> int:
    """Start a detached process writing to log_file; return its pid."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=env,
        )
    return process.pid


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    if state == "Z":
        _reap(pid)
        return False
    return True


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def stop(pid: int, grace_seconds: float = 10.0) -> None:
    """SIGTERM the process group, wait up to the grace period, then SIGKILL it."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace_seconds
        while time.monotonic() < deadline:
            if not alive(pid):
                _kill_group_leftovers(pid)
                return
            time.sleep(0.1)


def outage(pid: int, log_file: Path, seconds: float) -> int:
    """SIGKILL the process group, wait `seconds`, and start the process again as it was (its
    command line, environment and working directory, read from /proc before the kill): a
    service that goes down and comes back on the same address with the same data. Its
    new pid."""
    proc = Path(f"/proc/{pid}")
    argv = proc.joinpath("cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    environment = dict(entry.split(b"=", 1) for entry in
                       proc.joinpath("environ").read_bytes().split(b"\0") if b"=" in entry)
    cwd = os.readlink(proc / "cwd")
    os.killpg(pid, signal.SIGKILL)
    while alive(pid):
        time.sleep(0.05)
    time.sleep(seconds)
    with open(log_file, "ab") as log:
        return subprocess.Popen([a.decode() for a in argv], stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, cwd=cwd,
                                start_new_session=True,
                                env={k.decode(): v.decode() for k, v in environment.items()}).pid


def _kill_group_leftovers(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def log_tail(log_file: Path, lines: int = 20) -> str:
    try:
        return "\n".join(log_file.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def health_error(url: str, tls: ssl.SSLContext | None = None) -> str | None:
    """None when url answers 200, else what went wrong."""
    try:
        with urllib.request.urlopen(url, timeout=2, context=tls) as response:
            return None if response.status == 200 else f"HTTP {response.status}"
    except (urllib.error.URLError, OSError) as error:
        return str(error)


def wait_healthy(
    name: str,
    url: str,
    pid: int,
    log_file: Path,
    timeout: float,
    tls: ssl.SSLContext | None = None,
) -> None:
    """Poll url until it answers 200; fail early with the log's tail if the process dies."""
    deadline = time.monotonic() + timeout
    last_error = ""
    while time.monotonic() < deadline:
        if not alive(pid):
            raise RuntimeError(
                f"{name} exited during start-up. Last log lines:\n{log_tail(log_file)}"
            )
        error = health_error(url, tls)
        if error is None:
            return
        last_error = error
        time.sleep(0.2)
    raise RuntimeError(
        f"{name} was not healthy at {url} within {timeout:.0f} s ({last_error}). "
        f"Last log lines:\n{log_tail(log_file)}"
    )
