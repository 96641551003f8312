"""The real node's container runtime: Debian's containerd with its own config, root, state
and socket; images loaded from the OCI archives localkube.images builds; and, on the way
down, every container it ran killed and every mount it made released."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path

from localkube import processes
from localkube.realnode.config import NodeDirs

CONTAINERD = "/usr/bin/containerd"
CTR = "/usr/bin/ctr"
NAMESPACE = "k8s.io"  # the CRI plugin's namespace: what the kubelet sees


def argv(dirs: NodeDirs) -> list[str]:
    return [CONTAINERD, "--config", str(dirs.containerd_config), "--log-level", "warn"]


def ctr(dirs: NodeDirs, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CTR, "--address", str(dirs.containerd_socket), "--namespace", NAMESPACE, *args],
        capture_output=True, text=True, timeout=timeout,
    )


def wait_ready(dirs: NodeDirs, pid: int, log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not processes.alive(pid):
            raise RuntimeError(f"containerd exited. Last log lines:\n{processes.log_tail(log)}")
        if dirs.containerd_socket.exists() and ctr(dirs, "version", timeout=5).returncode == 0:
            return
        time.sleep(0.2)
    raise RuntimeError(f"containerd not ready within {timeout:.0f} s:\n{processes.log_tail(log)}")


def images(dirs: NodeDirs) -> set[str]:
    result = ctr(dirs, "images", "list", "--quiet")
    return set(result.stdout.split()) if result.returncode == 0 else set()


def import_image(dirs: NodeDirs, reference: str, archive: Path) -> bool:
    """Load an OCI archive into the CRI namespace (unpacked for overlayfs), unless there.

    Returns whether it was imported."""
    if reference in images(dirs):
        return False
    result = ctr(dirs, "images", "import", str(archive))
    if result.returncode != 0 or reference not in images(dirs):
        raise RuntimeError(
            f"ctr images import {archive} did not load {reference}: "
            f"{(result.stderr or result.stdout).strip()}")
    return True


def running_containers(dirs: NodeDirs) -> dict[str, int]:
    """The containers whose process runs: id (`containerd://<id>` in a Pod's status) -> the
    host pid of its main process."""
    listed = ctr(dirs, "tasks", "list", timeout=30).stdout.splitlines()[1:]
    return {words[0]: int(words[1]) for words in map(str.split, listed)
            if words[2:3] == ["RUNNING"]}


def run(dirs: NodeDirs, reference: str, command: list[str]) -> str:
    """Run a command in a fresh container of the image (outside any Pod); its output."""
    name = f"localkube-run-{uuid.uuid4().hex[:8]}"
    result = ctr(dirs, "run", "--rm", reference, name, *command, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} in {reference} failed: {result.stderr.strip()}")
    return result.stdout


def tag(dirs: NodeDirs, source: str, target: str) -> None:
    """Give an imported image a second name (replacing whatever had that name)."""
    result = ctr(dirs, "images", "tag", "--force", source, target)
    if result.returncode != 0:
        raise RuntimeError(f"ctr images tag {source} {target}: {result.stderr.strip()}")


def _shim_pids(dirs: NodeDirs) -> list[int]:
    """containerd's shims leave its process group; they name our socket on their command line."""
    socket = str(dirs.containerd_socket).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmdline and cmdline[0].endswith(b"containerd-shim-runc-v2") and socket in cmdline:
            found.append(int(entry.name))
    return found


def kill_shims(dirs: NodeDirs) -> None:
    for pid in _shim_pids(dirs):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def wait_shims_gone(dirs: NodeDirs, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _shim_pids(dirs):
            return True
        time.sleep(0.2)
    return not _shim_pids(dirs)
