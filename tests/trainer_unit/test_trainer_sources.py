"""Fetching sources: http(s) with a size cap, sorted failures and the address policy on every
hop, and scikit-learn datasets."""

from __future__ import annotations

import http.server
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localkube.pki import CertSpec, ensure_pki
from mlcycle_contract.api.dataset import BuiltinDataset
from mlcycle_contract.environment import networks
from mlcycle_trainer.addresses import AddressPolicy
from mlcycle_trainer.errors import InvalidInput, Transient
from mlcycle_trainer.sources import fetch_url, load_builtin

BODY = b"a,y\n" + b"1,2\n" * 1000
# The test server listens on the loopback address, which only an explicit allow lets through.
LOOPBACK_ALLOWED = AddressPolicy(allowed=networks("127.0.0.1"))


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/data.csv":
            self.send_response(200)
            self.send_header("Content-Length", str(len(BODY)))
            self.end_headers()
            self.wfile.write(BODY)
        elif self.path == "/undeclared.csv":  # no Content-Length: the cap applies while reading
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(BODY)
        elif self.path == "/busy.csv":
            self.send_error(503)
        elif self.path == "/to-ftp":
            self.redirect("ftp://example.invalid/data.csv")
        elif self.path == "/to-data":
            self.redirect("/data.csv")
        elif self.path == "/to-metadata":
            self.redirect("http://169.254.169.254/latest/meta-data/")
        elif self.path == "/to-other-loopback":
            self.redirect(f"http://127.0.0.2:{self.server.server_address[1]}/data.csv")
        elif self.path == "/loop":
            self.redirect("/loop")
        else:
            self.send_error(404)

    def redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """An https server for data.example on the loopback address; its port and CA file."""
    pki = ensure_pki(tmp_path_factory.mktemp("pki"), [CertSpec("web", "data.example",
                                                                server_names=("data.example",))])
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.cert("web"), pki.key("web"))
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd.server_address[1], pki.ca_cert
    httpd.shutdown()
    httpd.server_close()


def test_https_connects_to_the_checked_address_and_verifies_the_host_name(
    tls_server: tuple[int, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, ca_file = tls_server
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    monkeypatch.setattr(socket, "getaddrinfo", lambda *_args, **_kwargs: [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))])
    assert fetch_url(f"https://data.example:{port}/data.csv", LOOPBACK_ALLOWED) == BODY
    with pytest.raises(Transient, match="CERTIFICATE_VERIFY_FAILED"):
        fetch_url(f"https://127.0.0.1:{port}/data.csv", LOOPBACK_ALLOWED)  # not its name
    refused(f"https://data.example:{port}/data.csv", AddressPolicy())


def test_a_url_is_fetched(server: str) -> None:
    assert fetch_url(f"{server}/data.csv", LOOPBACK_ALLOWED) == BODY


def test_a_redirect_within_the_policy_is_followed(server: str) -> None:
    assert fetch_url(f"{server}/to-data", LOOPBACK_ALLOWED) == BODY


def refused(url: str, policy: AddressPolicy) -> InvalidInput:
    with pytest.raises(InvalidInput) as excinfo:
        fetch_url(url, policy)
    assert excinfo.value.reason == "SourceNotAllowed"
    assert excinfo.value.field == "spec.source.url"
    assert excinfo.value.message.startswith("spec.source.url: ")
    return excinfo.value


def test_loopback_is_refused_unless_allowed(server: str) -> None:
    error = refused(f"{server}/data.csv", AddressPolicy())
    assert "resolves to 127.0.0.1, and 127.0.0.1 is in 127.0.0.0/8" in error.message


def test_a_mapped_ipv6_address_is_refused_as_its_ipv4_address(server: str) -> None:
    port = server.rsplit(":", 1)[1]
    error = refused(f"http://[::ffff:127.0.0.1]:{port}/data.csv", AddressPolicy())
    assert "127.0.0.1 is in 127.0.0.0/8" in error.message


@pytest.mark.parametrize(("path", "address"), [
    ("/to-metadata", "169.254.169.254"),
    ("/to-other-loopback", "127.0.0.2"),
])
def test_every_redirect_hop_is_checked(server: str, path: str, address: str) -> None:
    error = refused(f"{server}{path}", LOOPBACK_ALLOWED)
    assert f"resolves to {address}" in error.message


def test_redirects_are_bounded(server: str) -> None:
    with pytest.raises(InvalidInput, match="more than 5 redirects") as excinfo:
        fetch_url(f"{server}/loop", LOOPBACK_ALLOWED)
    assert excinfo.value.reason == "SourceUnreadable"


def test_the_connection_goes_to_the_checked_address(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: a name that answers an allowed address, then the metadata address."""
    port = int(server.rsplit(":", 1)[1])
    answers = iter(["127.0.0.1", "169.254.169.254"])

    def rebinding(host: str, *args: Any, **kwargs: Any) -> list[Any]:
        address = next(answers)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    assert fetch_url(f"http://data.example:{port}/data.csv", LOOPBACK_ALLOWED) == BODY
    assert next(answers) == "169.254.169.254"  # resolved once: the checked answer was used


@pytest.mark.parametrize("path", ["/data.csv", "/undeclared.csv"])
def test_the_size_cap_holds_with_or_without_content_length(server: str, path: str) -> None:
    with pytest.raises(InvalidInput) as excinfo:
        fetch_url(f"{server}{path}", LOOPBACK_ALLOWED, max_bytes=100)
    assert excinfo.value.reason == "SourceTooLarge"


def test_not_found_is_invalid_input(server: str) -> None:
    with pytest.raises(InvalidInput) as excinfo:
        fetch_url(f"{server}/missing.csv", LOOPBACK_ALLOWED)
    assert excinfo.value.reason == "SourceUnreadable"
    assert "HTTP 404" in excinfo.value.message


def test_an_overloaded_server_is_transient(server: str) -> None:
    with pytest.raises(Transient) as excinfo:
        fetch_url(f"{server}/busy.csv", LOOPBACK_ALLOWED)
    assert excinfo.value.reason == "SourceUnavailable"


def test_a_redirect_away_from_http_is_refused(server: str) -> None:
    with pytest.raises(InvalidInput, match="refusing a redirect"):
        fetch_url(f"{server}/to-ftp", LOOPBACK_ALLOWED)


def test_a_refused_connection_is_transient() -> None:
    with pytest.raises(Transient):
        fetch_url("http://127.0.0.1:9/data.csv", LOOPBACK_ALLOWED)


def test_a_builtin_target_takes_the_requested_name() -> None:
    assert "species" in load_builtin(BuiltinDataset.IRIS, "species").columns
    assert "target" in load_builtin(BuiltinDataset.IRIS, "target").columns
    wine = load_builtin(BuiltinDataset.WINE, "alcohol")  # another column as target: kept
    assert {"alcohol", "target"} <= set(wine.columns)
