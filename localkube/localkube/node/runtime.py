"""Container processes: start through the launcher, pump logs, reap, signal.

Each container instance is a process group of its own (`start_new_session`) whose
leader is the container's main process: `ip netns exec` and the launcher both
`exec`, so the pid we spawn is the pid that runs the command. When the leader
exits, the rest of its group is killed, as a runtime does when a container's init
process exits. A pid file per running instance lets the next agent run kill what a
crashed agent left behind.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from . import launch
from .clock import rfc3339_nano

log = logging.getLogger(__name__)

LAUNCHER = launch.__file__
LAUNCH_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
PARTIAL_LINE_MAX = 16 * 1024


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool = False


@dataclass
class LaunchSpec:
    """What the launcher needs; `env` may hold secrets: it is never logged."""

    argv: list[str]
    env: dict[str, str]
    cwd: str
    uid: int | None = None
    gid: int | None = None
    groups: list[int] = field(default_factory=list)
    mounts: list[Mount] = field(default_factory=list)

    def to_json(self, **extra: Any) -> str:
        data = asdict(self)
        data.update(extra)
        return json.dumps(data)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def proc_start_time(pid: int) -> str | None:
    """Field 22 of /proc/PID/stat: identifies a process across pid reuse."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def kill_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _launch_argv(python: str, spec_path: Path, netns: str | None) -> list[str]:
    argv = [python, "-I", "-S", LAUNCHER, str(spec_path)]
    return ["ip", "netns", "exec", netns, *argv] if netns else argv


class ContainerProcess:
    """One run of one container."""

    def __init__(
        self,
        *,
        label: str,
        workdir: Path,
        instance: int,
        spec: LaunchSpec,
        netns: str | None,
        python: str,
        on_exit: Callable[[], None],
    ) -> None:
        self.label = label
        self.workdir = workdir
        self.instance = instance
        self.spec = spec
        self.netns = netns
        self.python = python
        self.on_exit = on_exit
        self.log_path = workdir / f"{instance}.log"
        self.error_path = workdir / f"{instance}.error"
        self.pid_path = workdir / "pid"
        self.pid = 0
        self.started_at = 0.0
        self.finished_at: float | None = None
        self.returncode: int | None = None
        self.stop_requested = False
        self._popen: subprocess.Popen[bytes] | None = None
        self._exited = threading.Event()
        self._log_done = threading.Event()

    @property
    def running(self) -> bool:
        return self._popen is not None and not self._exited.is_set()

    @property
    def logs_complete(self) -> bool:
        return self._log_done.is_set()

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        spec_path = self.workdir / f"{self.instance}.spec.json"
        _write_private(
            spec_path,
            self.spec.to_json(
                error_file=str(self.error_path), unlink_spec=True, unshare_mount=self.netns is None
            ),
        )
        self.log_path.touch()
        self.started_at = time.time()
        self._popen = subprocess.Popen(
            _launch_argv(self.python, spec_path, self.netns),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
            env={"PATH": LAUNCH_PATH, "LANG": "C.UTF-8"},
        )
        self.pid = self._popen.pid
        self.pid_path.write_text(f"{self.pid} {proc_start_time(self.pid) or ''}\n")
        assert self._popen.stdout is not None
        threading.Thread(
            target=self._pump,
            args=(self._popen.stdout,),
            name=f"log {self.label}",
            daemon=True,
        ).start()
        threading.Thread(target=self._wait, name=f"wait {self.label}", daemon=True).start()

    def _pump(self, pipe: IO[bytes]) -> None:
        fd = pipe.fileno()
        pending = b""
        with open(self.log_path, "ab", buffering=0) as out:
            while True:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    chunk = b""
                if not chunk:
                    break
                pending += chunk
                lines = pending.split(b"\n")
                pending = lines.pop()
                records = [self._record(line, b"F") for line in lines]
                while len(pending) > PARTIAL_LINE_MAX:
                    records.append(self._record(pending[:PARTIAL_LINE_MAX], b"P"))
                    pending = pending[PARTIAL_LINE_MAX:]
                if records:
                    out.write(b"".join(records))
            if pending:
                out.write(self._record(pending, b"P"))
        # Close through the file object: a bare os.close() would let Popen close the
        # same descriptor number again later, when it may belong to another pipe.
        with contextlib.suppress(OSError):
            pipe.close()
        self._log_done.set()

    @staticmethod
    def _record(line: bytes, tag: bytes) -> bytes:
        return rfc3339_nano().encode() + b" stdout " + tag + b" " + line + b"\n"

    def _wait(self) -> None:
        assert self._popen is not None
        code = self._popen.wait()
        self.finished_at = time.time()
        kill_group(self.pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            self.pid_path.unlink()
        # The pump ends once every holder of the pipe is gone; wait for it (briefly) so
        # the log is complete when the status says the container terminated.
        self._log_done.wait(2.0)
        self.returncode = code
        self._exited.set()
        self.on_exit()

    def wait(self, timeout: float | None = None) -> bool:
        return self._exited.wait(timeout)

    def signal(self, sig: signal.Signals) -> None:
        if self.running:
            kill_group(self.pid, sig)

    def terminate(self, grace: float) -> None:
        """SIGTERM now, SIGKILL after `grace` seconds if still running."""
        self.stop_requested = True
        self.signal(signal.SIGTERM)
        timer = threading.Timer(max(grace, 0.0), self.signal, args=(signal.SIGKILL,))
        timer.daemon = True
        timer.start()

    def start_error(self) -> str | None:
        try:
            text = self.error_path.read_text(errors="replace").strip()
        except OSError:
            return None
        return text or None


def exec_in_container(
    proc: ContainerProcess, command: list[str], *, timeout: float, python: str
) -> tuple[int, bytes]:
    """Run `command` in a running container's namespaces, user and environment.

    Returns (exit code, output); exit code -1 on timeout.
    """
    spec = LaunchSpec(
        argv=command,
        env=proc.spec.env,
        cwd=proc.spec.cwd,
        uid=proc.spec.uid,
        gid=proc.spec.gid,
        groups=proc.spec.groups,
    )
    spec_path = proc.workdir / f"exec-{threading.get_ident()}-{time.monotonic_ns()}.json"
    _write_private(spec_path, spec.to_json(enter_pid=proc.pid, unlink_spec=True))
    child = subprocess.Popen(
        [python, "-I", "-S", LAUNCHER, str(spec_path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={"PATH": LAUNCH_PATH},
    )
    try:
        out, _ = child.communicate(timeout=timeout)
        return child.returncode, out
    except subprocess.TimeoutExpired:
        kill_group(child.pid, signal.SIGKILL)
        child.communicate()
        return -1, b""
    finally:
        with contextlib.suppress(OSError):
            spec_path.unlink()


def kill_recorded_processes(pods_dir: Path) -> int:
    """Kill the process groups a previous agent run recorded in pid files."""
    killed = 0
    for pid_file in pods_dir.glob("*/containers/*/pid"):
        try:
            pid_text, _, start = pid_file.read_text().strip().partition(" ")
            pid = int(pid_text)
        except (OSError, ValueError):
            continue
        current = proc_start_time(pid)
        if current is not None and start and current != start:
            log.info("Skipping pid %d from %s: reused by another process", pid, pid_file)
        else:
            kill_group(pid, signal.SIGKILL)
            killed += 1
        with contextlib.suppress(OSError):
            pid_file.unlink()
    return killed
