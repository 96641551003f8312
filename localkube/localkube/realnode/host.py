"""What the real node changes on the host, and how `down` takes it back: the node's bridge,
the forwarding sysctls (left on), the pods' cgroups, mounts under `.local/realnode/`, and
the iptables chains the kubelet, kube-proxy and the CNI portmap plugin create."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

from localkube import network
from localkube.realnode.config import BRIDGE, POD_CIDR

CGROUP_ROOT = Path("/sys/fs/cgroup")
KUBEPODS = "kubepods"  # the kubelet's cgroup for every pod (cgroupfs driver)


def ensure_bridge() -> str:
    """The node's bridge with its address (the CNI gateway), and forwarding on, since
    traffic to a Service address is routed (DNAT) from one pod, or the host, to another."""
    address = network.ensure_bridge(BRIDGE, POD_CIDR)
    Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")
    if shutil.which("modprobe"):
        subprocess.run(["modprobe", "br_netfilter"], capture_output=True)
    bridge_nf = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
    if bridge_nf.exists():
        # Replies between pods on one bridge must pass conntrack to undo a Service's DNAT.
        bridge_nf.write_text("1\n")
    return address


def remove_bridge() -> None:
    subprocess.run(["ip", "link", "delete", BRIDGE], capture_output=True)


def _pod_cgroups() -> list[Path]:
    """Every pod's cgroup in every v1 hierarchy, deepest first."""
    found: list[Path] = []
    for hierarchy in CGROUP_ROOT.iterdir():
        top = hierarchy / KUBEPODS
        if top.is_dir():
            found.extend(path for path in top.rglob("*") if path.is_dir())
            found.append(top)
    return sorted(found, key=lambda path: len(path.parts), reverse=True)


def kill_pod_processes(timeout: float = 10) -> None:
    """SIGKILL every process in a pod's cgroup until none is left."""
    deadline = time.monotonic() + timeout
    while True:
        pids: set[int] = set()
        for cgroup in _pod_cgroups():
            with contextlib.suppress(OSError):
                pids.update(int(pid) for pid in (cgroup / "cgroup.procs").read_text().split())
        if not pids or time.monotonic() > deadline:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)


def remove_pod_cgroups() -> None:
    for cgroup in _pod_cgroups():
        with contextlib.suppress(OSError):
            cgroup.rmdir()


def share_mounts(root: Path) -> None:
    """Make root a shared mount, as the kubelet wants its root directory for mount
    propagation (`/` itself is private on this machine)."""
    if not any(point == root.resolve() for point in mounts_under(root)):
        subprocess.run(["mount", "--bind", str(root), str(root)], check=True)
    subprocess.run(["mount", "--make-rshared", str(root)], check=True)


def mounts_under(root: Path) -> list[Path]:
    """Mount points at or below root, deepest (latest) first."""
    prefix = str(root.resolve())
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mount_point = line.split()[4].replace("\\040", " ")
        if mount_point == prefix or mount_point.startswith(prefix + "/"):
            found.append(Path(mount_point))
    return list(reversed(found))


def unmount_all(root: Path) -> None:
    for _ in range(5):
        points = mounts_under(root)
        if not points:
            return
        for point in points:
            if subprocess.run(["umount", str(point)], capture_output=True).returncode != 0:
                subprocess.run(["umount", "-l", str(point)], capture_output=True)


OUR_CHAINS = ("KUBE-", "CNI-HOSTPORT-")  # kubelet and kube-proxy; the portmap plugin


def remove_chains(prefixes: tuple[str, ...] = OUR_CHAINS) -> None:
    """Remove the chains the node made (no other kubelet or kube-proxy runs here): first the
    rules that jump to them from other chains, then their rules, then the chains."""
    for save, tool in (("iptables-save", "iptables"), ("ip6tables-save", "ip6tables")):
        if shutil.which(save) is None:
            continue
        for table in ("nat", "filter", "mangle"):
            dump = subprocess.run([save, "-t", table], capture_output=True, text=True).stdout
            chains = [line[1:].split()[0] for line in dump.splitlines()
                      if line.startswith(":") and line[1:].startswith(prefixes)]
            for line in dump.splitlines():
                rule = shlex.split(line[3:]) if line.startswith("-A ") else []
                if rule and rule[0] not in chains and any(
                        f"-j {chain}" in line for chain in chains):
                    subprocess.run([tool, "-t", table, "-D", *rule], capture_output=True)
            for flag in ("-F", "-X"):
                for chain in chains:
                    subprocess.run([tool, "-t", table, flag, chain], capture_output=True)
