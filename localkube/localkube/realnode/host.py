"""What the real nodes change on the host, and how `down` takes it back: each node's bridge,
cgroups and mounts (under `.local/realnode/`, `.local/realnode-2/`, ...), the forwarding
sysctls (left on), and, once for the host, the iptables chains the kubelets, kube-proxy and
the CNI portmap plugin create."""

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
from localkube.realnode.config import NodeIdentity

CGROUP_ROOT = Path("/sys/fs/cgroup")  # on cgroup v1, one mount point per hierarchy below it


def ensure_bridge(node: NodeIdentity) -> str:
    """The node's bridge with its address (the CNI gateway), and forwarding on, since
    traffic to a Service address is routed (DNAT) from one pod, or the host, to another,
    as is traffic between two nodes' bridges."""
    address = network.ensure_bridge(node.bridge, node.pod_cidr)
    Path("/proc/sys/net/ipv4/ip_forward").write_text("1\n")
    if shutil.which("modprobe"):
        subprocess.run(["modprobe", "br_netfilter"], capture_output=True)
    bridge_nf = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")
    if bridge_nf.exists():
        # Replies between pods on one bridge must pass conntrack to undo a Service's DNAT.
        bridge_nf.write_text("1\n")
    return address


def remove_bridge(node: NodeIdentity) -> None:
    subprocess.run(["ip", "link", "delete", node.bridge], capture_output=True)


def _hierarchies(cgroup_mounts: Path) -> list[Path]:
    return sorted(path for path in cgroup_mounts.iterdir() if path.is_dir())


def ensure_cgroup_root(node: NodeIdentity, cgroup_mounts: Path = CGROUP_ROOT) -> None:
    """The kubelet's cgroupRoot in every hierarchy: the kubelet checks that it exists in each
    it uses (cpu, cpuacct, cpuset, memory, pids, systemd, hugetlb) and will not create it.
    Node 1's root is `/`, which exists."""
    if node.cgroup_root is None:
        return
    for hierarchy in _hierarchies(cgroup_mounts):
        (hierarchy / node.cgroup_root.strip("/")).mkdir(exist_ok=True)


def pod_cgroups(node: NodeIdentity, cgroup_mounts: Path = CGROUP_ROOT) -> list[Path]:
    """The node's pods' cgroups in every v1 hierarchy, deepest first, and the node's own
    cgroup root when it is not `/`: never another node's."""
    found: list[Path] = []
    for hierarchy in _hierarchies(cgroup_mounts):
        top = hierarchy / node.pods_cgroup
        if top.is_dir():
            found.extend(_directories_below(top))
            found.append(top)
        if node.cgroup_root is not None and (hierarchy / node.cgroup_root.strip("/")).is_dir():
            found.append(hierarchy / node.cgroup_root.strip("/"))
    return sorted(found, key=lambda path: len(path.parts), reverse=True)


def _directories_below(top: Path) -> list[Path]:
    """Every directory below top. os.walk skips a directory that vanishes during the walk
    (the kubelet removes a pod's cgroups as it stops it); pathlib's rglob raises
    FileNotFoundError for it."""
    return [Path(parent) / name for parent, names, _ in os.walk(top) for name in names]


def kill_pod_processes(node: NodeIdentity, timeout: float = 10) -> None:
    """SIGKILL every process in the node's pods' cgroups until none is left."""
    deadline = time.monotonic() + timeout
    while True:
        pids: set[int] = set()
        for cgroup in pod_cgroups(node):
            with contextlib.suppress(OSError):
                pids.update(int(pid) for pid in (cgroup / "cgroup.procs").read_text().split())
        if not pids or time.monotonic() > deadline:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)


def remove_pod_cgroups(node: NodeIdentity, cgroup_mounts: Path = CGROUP_ROOT) -> None:
    for cgroup in pod_cgroups(node, cgroup_mounts):
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
    """Remove the chains the nodes made, once the last node is down (no other kubelet or
    kube-proxy runs here): first the rules that jump to them from other chains, then their
    rules, then the chains."""
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
