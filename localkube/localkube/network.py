"""The host's own address on the cluster network: a Linux bridge with no ports, whose
address the apiserver, MinIO and MLflow listen on. Pods (on the node's bridge, routed
through this host) reach them there; the node's own bridge is localkube.realnode's.
"""

from __future__ import annotations

import ipaddress
import json
import subprocess

BRIDGE = "mlcycle0"
POD_CIDR = "10.244.0.0/24"
SERVICE_CIDR = "10.96.0.0/16"


def host_ip(pod_cidr: str = POD_CIDR) -> str:
    """The first address of the range belongs to the host (the bridge)."""
    return str(next(ipaddress.ip_network(pod_cidr).hosts()))


def _ip(*args: str) -> str:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def ensure_bridge(name: str = BRIDGE, pod_cidr: str = POD_CIDR) -> str:
    """Create the bridge with the host address if missing (idempotent); return that address."""
    address = host_ip(pod_cidr)
    prefix = ipaddress.ip_network(pod_cidr).prefixlen
    links = json.loads(_ip("-j", "link", "show") or "[]")
    if not any(link.get("ifname") == name for link in links):
        _ip("link", "add", name, "type", "bridge")
    addresses = json.loads(_ip("-j", "addr", "show", "dev", name) or "[]")
    assigned = {info["local"] for entry in addresses for info in entry.get("addr_info", [])}
    if address not in assigned:
        _ip("addr", "add", f"{address}/{prefix}", "dev", name)
    _ip("link", "set", name, "up")
    return address
