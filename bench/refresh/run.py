"""A Dataset refresh check of an unchanged 100 MB source (spec.refreshInterval): how many
bytes it downloads and how long it takes, over a local http server and over MinIO.

The check is the trainer's own code (`mlcycle_trainer.sources.fetch_raw` with the last
download's validators), as a refresh Job runs it: a conditional GET over http (the server
answers 304 Not Modified), a HEAD over s3 (the same ETag). Bytes are counted where they
leave: the http server counts the body bytes it sends, and the S3 client counts GetObject
calls (a HEAD has no body). For scale, one full download of the same source is timed too.
Median of 3 checks each. MinIO is a private instance of the binary `make up` builds (a temp
directory, a free port), so the shared stack is not touched.

Run: `.venv/bin/python -m bench.refresh.run`. Results replace the `refresh` section of
docs/benchmarks.md.
"""

from __future__ import annotations

import email.utils
import http.server
import os
import secrets
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import boto3

from bench.sections import machine, replace_section
from localkube import build, processes
from mlcycle_contract.api.dataset import DatasetSource, SourceValidators
from mlcycle_contract.environment import networks
from mlcycle_trainer.addresses import AddressPolicy
from mlcycle_trainer.sources import Fetched, Unchanged, fetch_raw
from mlcycle_trainer.storage import ObjectStore

SIZE = 100 * 1024 * 1024
ROUNDS = 3
BUCKET, KEY = "bench", "datasets/bench/source.csv"
LOOPBACK = AddressPolicy(allowed=networks("127.0.0.1"))
ROW = b"1.5,2.25,3.125,4.0625,a,0\n"


def source_bytes() -> bytes:
    return (b"w,x,y,z,c,target\n" + ROW * (SIZE // len(ROW) + 1))[:SIZE]


class Served(http.server.BaseHTTPRequestHandler):
    """One file with an ETag and Last-Modified; 304 to a matching conditional GET."""

    body: ClassVar[bytes] = b""
    sent: ClassVar[list[int]] = []
    etag = '"bench-v1"'
    modified = email.utils.formatdate(1_700_000_000, usegmt=True)

    def do_GET(self) -> None:
        if self.headers.get("If-None-Match") == self.etag:
            self.sent.append(0)
            self.send_response(304)
            self.send_header("ETag", self.etag)
            self.end_headers()
            return
        self.sent.append(len(self.body))
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.send_header("ETag", self.etag)
        self.send_header("Last-Modified", self.modified)
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def http_server(body: bytes) -> Iterator[str]:
    Served.body = body
    with processes.serving_http("127.0.0.1", Served) as base:
        yield f"{base}/source.csv"


class CountingClient:
    """A real boto3 S3 client that counts the GetObject calls made through it."""

    def __init__(self, client: Any) -> None:
        self._client, self.gets = client, 0

    def get_object(self, **kwargs: Any) -> Any:
        self.gets += 1
        return self._client.get_object(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


@contextmanager
def minio(workdir: Path) -> Iterator[Any]:
    """A private MinIO on a free port, stopped afterwards; its S3 client."""
    binary = build.ensure_binaries(["minio"])["minio"]
    port, password = processes.free_port(), secrets.token_urlsafe(24)
    log = workdir / "minio.log"
    pid = processes.start(
        [str(binary), "server", str(workdir / "data"), "--quiet",
         "--address", f"127.0.0.1:{port}",
         "--console-address", f"127.0.0.1:{processes.free_port()}"],
        log, env={**os.environ, "MINIO_ROOT_USER": "bench", "MINIO_ROOT_PASSWORD": password,
                  "MINIO_BROWSER": "off"})
    try:
        endpoint = f"http://127.0.0.1:{port}"
        processes.wait_healthy("minio", f"{endpoint}/minio/health/live", pid, log, 60)
        yield boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="bench",
                           aws_secret_access_key=password, region_name="us-east-1")
    finally:
        processes.stop(pid)


def timed(call: Callable[[], Fetched | Unchanged]) -> tuple[float, Fetched | Unchanged]:
    started = time.perf_counter()
    result = call()
    return time.perf_counter() - started, result


def measure(check: Callable[[SourceValidators | None], Fetched | Unchanged],
            downloaded: Callable[[], int]) -> dict[str, float]:
    """One full download (its validators kept), then ROUNDS checks with them."""
    before = downloaded()
    full_seconds, first = timed(lambda: check(None))
    assert isinstance(first, Fetched) and len(first.data) == SIZE
    full_bytes = downloaded() - before
    seconds, check_bytes = [], []
    for _ in range(ROUNDS):
        before = downloaded()
        elapsed, result = timed(lambda: check(first.validators))
        assert isinstance(result, Unchanged), result
        seconds.append(elapsed)
        check_bytes.append(downloaded() - before)
    return {"full_seconds": full_seconds, "full_bytes": full_bytes,
            "check_seconds": statistics.median(seconds), "check_max_seconds": max(seconds),
            "check_bytes": max(check_bytes)}


def bench_http(body: bytes) -> dict[str, float]:
    store = ObjectStore(object())  # unused by a url source
    with http_server(body) as url:
        source = DatasetSource(url=url)
        Served.sent.clear()
        return measure(lambda since: fetch_raw(source, store, LOOPBACK, since),
                       lambda: sum(Served.sent))


def bench_s3(body: bytes) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-refresh-") as workdir, \
            minio(Path(workdir)) as client:
        client.create_bucket(Bucket=BUCKET)
        client.put_object(Bucket=BUCKET, Key=KEY, Body=body)
        counting = CountingClient(client)
        store, source = ObjectStore(counting), DatasetSource(s3=f"s3://{BUCKET}/{KEY}")

        def downloaded() -> int:  # a GetObject here returns the whole object
            return counting.gets * SIZE

        return measure(lambda since: fetch_raw(source, store, LOOPBACK, since), downloaded)


def report(results: dict[str, dict[str, float]]) -> str:
    rows = "\n".join(
        f"| {name} | {r['check_bytes']:.0f} | {r['check_seconds'] * 1000:.1f} ms "
        f"(max {r['check_max_seconds'] * 1000:.1f} ms) | {r['full_bytes'] / 2**20:.0f} MiB in "
        f"{r['full_seconds']:.2f} s |" for name, r in results.items())
    return f"""## Dataset refresh of an unchanged 100 MB source (`python -m bench.refresh.run`)

{machine()}

A refresh check (`spec.refreshInterval`) of an unchanged 100 MiB csv, by the trainer's own
code with the validators of the last download: a conditional GET answered 304 Not Modified
(local http server), a HEAD with the same ETag (a private MinIO). Median of {ROUNDS} checks;
bytes counted where they leave (the server's body bytes; GetObject calls). A full download of
the same source is shown for scale (over loopback, hence fast). Not included, and not
measured here: the start of the refresh Job's Pod, which each check pays on the cluster
(`mlcycle.builders.dataset` says why the check runs in the namespace's Pod, not in the
operator). Load average {os.getloadavg()[0]:.1f} when measured.

| source | bytes downloaded by the check | check time | full download |
| --- | --- | --- | --- |
{rows}
"""


def main() -> None:
    body = source_bytes()
    results = {"http (conditional GET)": bench_http(body), "s3 (MinIO, HEAD)": bench_s3(body)}
    for name, result in results.items():
        print(name, {k: round(v, 4) for k, v in result.items()})
    replace_section("refresh", report(results))


if __name__ == "__main__":
    main()
