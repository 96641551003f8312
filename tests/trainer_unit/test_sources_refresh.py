"""Refresh checks in the trainer: an unchanged source downloads nothing (a conditional GET
answered 304 over http, an ETag equal to the last download's over s3), a changed one is
downloaded with its new validators, and `ingest` reports an unchanged source as such."""

from __future__ import annotations

import email.utils
import http.server
import io
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from mlcycle_contract import environment
from mlcycle_contract.api.dataset import SourceValidators
from mlcycle_contract.environment import networks
from mlcycle_contract.results import SourceUnchangedResult
from mlcycle_trainer.addresses import AddressPolicy
from mlcycle_trainer.ingest import run_ingest
from mlcycle_trainer.sources import (
    Fetched,
    Unchanged,
    conditional_headers,
    fetch_s3_since,
    fetch_url_since,
)
from mlcycle_trainer.storage import ObjectStore

BODY = b"a,y\n" + b"1,2\n" * 1000
LOOPBACK_ALLOWED = AddressPolicy(allowed=networks("127.0.0.1"))
ETAG = '"v1"'
MODIFIED = email.utils.formatdate(1_700_000_000, usegmt=True)


class Conditional(http.server.BaseHTTPRequestHandler):
    """Serves BODY with an ETag and Last-Modified and honours both conditional headers, as
    nginx and S3's web endpoints do; counts the body bytes it sent."""

    sent: ClassVar[list[int]] = []

    def do_GET(self) -> None:
        etag = ETAG if self.path != "/new-etag.csv" else '"v1-again"'
        matches = self.headers.get("If-None-Match") == etag
        unmodified = self.headers.get("If-Modified-Since") == MODIFIED
        if self.path != "/etag-only.csv" and (matches or (
                "If-None-Match" not in self.headers and unmodified)):
            self.sent.append(0)  # before answering: the client may look as soon as it has it
            self.send_response(304)
            self.send_header("ETag", etag)
            self.end_headers()
            return
        self.sent.append(len(BODY))
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", MODIFIED)
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Conditional)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_the_first_download_records_the_etag_and_last_modified(server: str) -> None:
    fetched = fetch_url_since(f"{server}/data.csv", LOOPBACK_ALLOWED, None)
    assert isinstance(fetched, Fetched) and fetched.data == BODY
    assert fetched.validators == SourceValidators(etag=ETAG, last_modified=MODIFIED)


def test_an_unchanged_http_source_answers_304_and_sends_no_body(server: str) -> None:
    Conditional.sent.clear()
    since = SourceValidators(etag=ETAG, last_modified=MODIFIED)
    unchanged = fetch_url_since(f"{server}/data.csv", LOOPBACK_ALLOWED, since)
    assert isinstance(unchanged, Unchanged)
    assert "304 Not Modified" in unchanged.evidence
    assert Conditional.sent == [0]
    # Last-Modified alone works too, for a server without ETags.
    by_date = fetch_url_since(f"{server}/data.csv", LOOPBACK_ALLOWED,
                              SourceValidators(last_modified=MODIFIED))
    assert isinstance(by_date, Unchanged)


def test_a_changed_http_source_is_downloaded_with_its_new_validators(server: str) -> None:
    fetched = fetch_url_since(f"{server}/new-etag.csv", LOOPBACK_ALLOWED,
                              SourceValidators(etag=ETAG, last_modified=MODIFIED))
    assert isinstance(fetched, Fetched) and fetched.data == BODY
    assert fetched.validators.etag == '"v1-again"'


def test_a_server_that_ignores_conditions_is_downloaded_and_the_hash_decides(server: str) -> None:
    fetched = fetch_url_since(f"{server}/etag-only.csv", LOOPBACK_ALLOWED,
                              SourceValidators(etag=ETAG))
    assert isinstance(fetched, Fetched) and fetched.data == BODY


def test_without_validators_no_conditional_header_is_sent() -> None:
    assert conditional_headers(None) == {}
    assert conditional_headers(SourceValidators()) == {}
    assert conditional_headers(SourceValidators(etag=ETAG)) == {"If-None-Match": ETAG}


class Bucket:
    """A boto3 client stand-in holding one object; records the calls made to it."""

    def __init__(self, etag: str) -> None:
        self.etag, self.calls = etag, list[str]()

    def head_object(self, **_: Any) -> dict[str, Any]:
        self.calls.append("head")
        return {"ETag": self.etag, "ContentLength": len(BODY)}

    def get_object(self, **_: Any) -> dict[str, Any]:
        self.calls.append("get")
        return {"ContentLength": len(BODY), "Body": io.BytesIO(BODY)}


def test_an_unchanged_s3_source_is_a_head_and_nothing_more() -> None:
    bucket = Bucket(ETAG)
    unchanged = fetch_s3_since("s3://data/ml/iris.csv", ObjectStore(bucket),
                               SourceValidators(etag=ETAG))
    assert isinstance(unchanged, Unchanged) and ETAG in unchanged.evidence
    assert bucket.calls == ["head"]


def test_a_changed_s3_source_is_downloaded_and_its_etag_recorded() -> None:
    bucket = Bucket('"v2"')
    fetched = fetch_s3_since("s3://data/ml/iris.csv", ObjectStore(bucket),
                             SourceValidators(etag=ETAG))
    assert isinstance(fetched, Fetched) and fetched.data == BODY
    assert fetched.validators == SourceValidators(etag='"v2"')
    assert bucket.calls == ["head", "get"]


def test_ingest_reports_an_unchanged_source_without_downloading(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    Conditional.sent.clear()
    for var, value in {
        environment.OWNER_NAME: "iris", environment.DATA_BUCKET: "data",
        environment.DATASET_SPEC: f'{{"source": {{"url": "{server}/data.csv"}}, "target": "y"}}',
        environment.SOURCE_ALLOW_CIDRS: "127.0.0.1",
    }.items():
        monkeypatch.setenv(var.name, value)
    monkeypatch.setenv(environment.SOURCE_VALIDATORS.name,
                       SourceValidators(etag=ETAG).model_dump_json(by_alias=True))
    result = run_ingest(ObjectStore(Bucket(ETAG)))
    assert isinstance(result, SourceUnchangedResult)
    assert result.unchanged and result.downloaded_bytes == 0
    assert Conditional.sent == [0]
