"""Which addresses a url source may connect to: a deny list and an allow list of networks.

Loopback, link-local (cloud metadata at 169.254.169.254 among them), unspecified,
multicast and reserved addresses are always refused; the operator adds the cluster's
Service range and the apiserver (SOURCE_DENY_CIDRS). An address is refused when it, or an
IPv4 address it carries (mapped, 6to4, NAT64), lies in a refused network and not in an
allowed one: the allow list wins only where it is explicit (SOURCE_ALLOW_CIDRS).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Mapping
from dataclasses import dataclass

from mlcycle_contract.environment import (
    SOURCE_ALLOW_CIDRS,
    SOURCE_DENY_CIDRS,
    EnvVar,
    IPNetwork,
    networks,
)
from mlcycle_trainer.environment import optional
from mlcycle_trainer.errors import INVALID_ENVIRONMENT, InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALWAYS_DENIED = networks(
    "0.0.0.0/8,127.0.0.0/8,169.254.0.0/16,224.0.0.0/4,240.0.0.0/4,"
    # unspecified, loopback and IPv4-compatible (::/96); link-local; site-local; multicast
    "::/96,fe80::/10,fec0::/10,ff00::/8"
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


@dataclass(frozen=True)
class AddressPolicy:
    """The networks refused on top of ALWAYS_DENIED, and those allowed regardless."""

    denied: tuple[IPNetwork, ...] = ()
    allowed: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> AddressPolicy:
        return cls(_networks(SOURCE_DENY_CIDRS, environ), _networks(SOURCE_ALLOW_CIDRS, environ))

    def refusal(self, address: IPAddress) -> str | None:
        """Why `address` is refused (`127.0.0.1 is in 127.0.0.0/8`), or None if it is not."""
        for form in _forms(address):
            refused = next((n for n in (*ALWAYS_DENIED, *self.denied) if form in n), None)
            if refused is not None and not any(form in n for n in self.allowed):
                return f"{form} is in {refused}"
        return None


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to (an IP literal resolves to itself)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(ipaddress.ip_address(info[4][0]) for info in infos))


def _networks(var: EnvVar, environ: Mapping[str, str] | None) -> tuple[IPNetwork, ...]:
    try:
        return networks(optional(var, environ))
    except ValueError as exc:
        raise InvalidInput(INVALID_ENVIRONMENT, f"{var.name}: {exc}") from exc


def _forms(address: IPAddress) -> tuple[IPAddress, ...]:
    """The address and the IPv4 address it carries, if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return (address,)
    carried = address.ipv4_mapped or address.sixtofour
    if carried is None and address in _NAT64:
        carried = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return (address,) if carried is None else (address, carried)
