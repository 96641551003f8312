"""GET over http(s) that connects only where the address policy permits.

Each hop's host is resolved once, every address checked, and the connection made to a
checked address, never to a second resolution of the name: a DNS answer that changes
between check and connect (rebinding) does not get through. Redirects are followed here,
not by a library, so every hop is checked the same way.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from urllib.parse import urljoin, urlsplit

from mlcycle_trainer.addresses import AddressPolicy, IPAddress, resolve

MAX_REDIRECTS = 5
_REDIRECT_STATUS = {301, 302, 303, 307, 308}
_USER_AGENT = "mlcycle-trainer"


class AddressRefused(Exception):
    """A hop resolves to an address the policy refuses."""


class BadRedirect(Exception):
    """A redirect without a usable http(s) target, or too many of them."""


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the checked addresses, in order, while naming the host in its requests."""

    def __init__(self, host: str, port: int, addresses: list[IPAddress], timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._addresses = addresses

    def connect(self) -> None:
        self.sock = _connect(self._addresses, self.port, self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """As _PinnedHTTPConnection, with TLS verified against the host name."""

    def __init__(self, host: str, port: int, addresses: list[IPAddress], timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._addresses = addresses
        self._tls = ssl.create_default_context()

    def connect(self) -> None:
        raw = _connect(self._addresses, self.port, self.timeout)
        self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)


def _connect(addresses: list[IPAddress], port: int, timeout: float | None) -> socket.socket:
    # Not socket.create_connection: it would resolve the address again.
    error: OSError | None = None
    for address in addresses:
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect((str(address), port))
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    assert error is not None  # resolve() never returns an empty list
    raise error


def _checked_connection(
    url: str, policy: AddressPolicy, timeout: float
) -> http.client.HTTPConnection:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadRedirect(f"refusing a redirect to {url!r}")
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    addresses = resolve(parts.hostname, port)
    for address in addresses:
        if (why := policy.refusal(address)) is not None:
            raise AddressRefused(f"{url} resolves to {address}, and {why}")
    pinned = _PinnedHTTPSConnection if https else _PinnedHTTPConnection
    return pinned(parts.hostname, port, addresses, timeout)


@contextmanager
def get(
    url: str, policy: AddressPolicy, timeout: float, headers: Mapping[str, str] | None = None
) -> Iterator[http.client.HTTPResponse]:
    """The response to GET `url` after at most MAX_REDIRECTS redirects, each hop checked;
    `headers` (e.g. If-None-Match) go with every hop."""
    for _ in range(MAX_REDIRECTS + 1):
        connection = _checked_connection(url, policy, timeout)
        parts = urlsplit(url)
        try:
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            sent = {**(headers or {}), "User-Agent": _USER_AGENT}
            connection.request("GET", target, headers=sent)
            response = connection.getresponse()
            location = response.getheader("Location")
            if response.status not in _REDIRECT_STATUS or not location:
                yield response
                return
        finally:
            connection.close()
        url = urljoin(url, location)
    raise BadRedirect(f"more than {MAX_REDIRECTS} redirects, the last to {url}")
