"""Pod sandboxes: one network namespace per pod, wired to the harness's bridge.

`lkpod-<uid>` is the namespace; a veth pair `lkv<hex>` (host side, on the bridge) /
`eth0` (inside) carries an address from the pod CIDR with a default route via the
host's bridge address. Address allocation is pure and unit-tested.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import signal
import subprocess
import threading
from collections.abc import Iterable
from dataclasses import dataclass

log = logging.getLogger(__name__)

NETNS_PREFIX = "lkpod-"
HOST_VETH_PREFIX = "lkv"
PEER_VETH_PREFIX = "lkp"


class SandboxError(Exception):
    """The pod network could not be set up (kubelet event `FailedCreatePodSandBox`)."""


@dataclass(frozen=True)
class SandboxNames:
    netns: str
    host_veth: str
    peer_veth: str

    @classmethod
    def for_pod(cls, uid: str) -> SandboxNames:
        short = uid.replace("-", "")[:10]
        return cls(
            netns=f"{NETNS_PREFIX}{uid}",
            host_veth=f"{HOST_VETH_PREFIX}{short}",
            peer_veth=f"{PEER_VETH_PREFIX}{short}",
        )


def candidate_ips(cidr: str, host_ip: str) -> list[str]:
    """Usable pod addresses: not the network, not .1, not the broadcast, not the host."""
    net = ipaddress.ip_network(cidr, strict=False)
    if net.num_addresses < 4:
        raise ValueError(f"pod CIDR {cidr} is too small")
    reserved = {net.network_address, net.broadcast_address, net.network_address + 1}
    out = []
    for addr in net.hosts():
        if addr in reserved or str(addr) == host_ip:
            continue
        out.append(str(addr))
    return out


def allocate_ip(
    candidates: list[str], used: Iterable[str], *, last: str | None, preferred: str | None
) -> str | None:
    """Round-robin after `last` (so a freed address is not reused at once)."""
    taken = set(used)
    if preferred and preferred in candidates and preferred not in taken:
        return preferred
    start = candidates.index(last) + 1 if last in candidates else 0
    for i in range(len(candidates)):
        ip = candidates[(start + i) % len(candidates)]
        if ip not in taken:
            return ip
    return None


class IpPool:
    """Thread-safe allocator over the pod CIDR."""

    def __init__(self, cidr: str, host_ip: str) -> None:
        self._candidates = candidate_ips(cidr, host_ip)
        self.prefixlen = ipaddress.ip_network(cidr, strict=False).prefixlen
        self._used: set[str] = set()
        self._last: str | None = None
        self._lock = threading.Lock()

    def acquire(self, preferred: str | None = None) -> str:
        with self._lock:
            ip = allocate_ip(self._candidates, self._used, last=self._last, preferred=preferred)
            if ip is None:
                raise SandboxError("no free pod IP address left in the pod CIDR")
            self._used.add(ip)
            self._last = ip
            return ip

    def release(self, ip: str) -> None:
        with self._lock:
            self._used.discard(ip)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if check and proc.returncode != 0:
        raise SandboxError(f"ip {' '.join(args)}: {proc.stderr.strip() or proc.returncode}")
    return proc


def link_exists(name: str) -> bool:
    return _ip("link", "show", "dev", name, check=False).returncode == 0


def list_netns() -> list[str]:
    out = _ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def netns_pids(netns: str) -> list[int]:
    out = _ip("netns", "pids", netns, check=False).stdout
    return [int(p) for p in out.split() if p.isdigit()]


def create_sandbox(
    names: SandboxNames, *, bridge: str, ip: str, prefixlen: int, gateway: str
) -> None:
    if not link_exists(bridge):
        raise SandboxError(f"bridge {bridge} does not exist on this host")
    delete_sandbox(names, bridge=bridge, ip=None)
    ns = names.netns
    _ip("netns", "add", ns)
    _ip(
        "link", "add", names.host_veth, "type", "veth", "peer", "name", names.peer_veth, "netns", ns
    )
    _ip("link", "set", names.host_veth, "master", bridge)
    _ip("link", "set", names.host_veth, "up")
    _ip("-n", ns, "link", "set", names.peer_veth, "name", "eth0")
    _ip("-n", ns, "addr", "add", f"{ip}/{prefixlen}", "dev", "eth0")
    _ip("-n", ns, "link", "set", "eth0", "up")
    _ip("-n", ns, "link", "set", "lo", "up")
    _ip("-n", ns, "route", "add", "default", "via", gateway)


def kill_netns_processes(netns: str) -> None:
    for pid in netns_pids(netns):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def delete_sandbox(names: SandboxNames, *, bridge: str, ip: str | None) -> None:
    """Idempotent: removes whatever part of the sandbox exists."""
    if names.netns in list_netns():
        kill_netns_processes(names.netns)
        _ip("netns", "del", names.netns, check=False)
    if link_exists(names.host_veth):
        _ip("link", "del", names.host_veth, check=False)
    if ip:
        _ip("neigh", "del", ip, "dev", bridge, check=False)


def cleanup_stale_sandboxes() -> int:
    """Remove every namespace and host veth carrying our prefixes (a previous run's)."""
    count = 0
    for ns in list_netns():
        if ns.startswith(NETNS_PREFIX):
            kill_netns_processes(ns)
            _ip("netns", "del", ns, check=False)
            count += 1
    out = _ip("-o", "link", "show", check=False).stdout
    for line in out.splitlines():
        parts = line.split(":")
        if len(parts) < 2:
            continue
        name = parts[1].strip().split("@")[0]
        if name.startswith(HOST_VETH_PREFIX):
            _ip("link", "del", name, check=False)
    return count
