"""Fetching sources: http(s) with a size cap and sorted failures, and scikit-learn datasets."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from mlcycle_contract.api.dataset import BuiltinDataset
from mlcycle_trainer.errors import InvalidInput, Transient
from mlcycle_trainer.sources import fetch_url, load_builtin

BODY = b"a,y\n" + b"1,2\n" * 1000


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
            self.send_response(302)
            self.send_header("Location", "ftp://example.invalid/data.csv")
            self.end_headers()
        else:
            self.send_error(404)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_a_url_is_fetched(server: str) -> None:
    assert fetch_url(f"{server}/data.csv") == BODY


@pytest.mark.parametrize("path", ["/data.csv", "/undeclared.csv"])
def test_the_size_cap_holds_with_or_without_content_length(server: str, path: str) -> None:
    with pytest.raises(InvalidInput) as excinfo:
        fetch_url(f"{server}{path}", max_bytes=100)
    assert excinfo.value.reason == "SourceTooLarge"


def test_not_found_is_invalid_input(server: str) -> None:
    with pytest.raises(InvalidInput) as excinfo:
        fetch_url(f"{server}/missing.csv")
    assert excinfo.value.reason == "SourceUnreadable"
    assert "HTTP 404" in excinfo.value.message


def test_an_overloaded_server_is_transient(server: str) -> None:
    with pytest.raises(Transient) as excinfo:
        fetch_url(f"{server}/busy.csv")
    assert excinfo.value.reason == "SourceUnavailable"


def test_a_redirect_away_from_http_is_refused(server: str) -> None:
    with pytest.raises(InvalidInput, match="refusing a redirect"):
        fetch_url(f"{server}/to-ftp")


def test_a_refused_connection_is_transient() -> None:
    with pytest.raises(Transient):
        fetch_url("http://127.0.0.1:9/data.csv")


def test_a_builtin_target_takes_the_requested_name() -> None:
    assert "species" in load_builtin(BuiltinDataset.IRIS, "species").columns
    assert "target" in load_builtin(BuiltinDataset.IRIS, "target").columns
    wine = load_builtin(BuiltinDataset.WINE, "alcohol")  # another column as target: kept
    assert {"alcohol", "target"} <= set(wine.columns)
