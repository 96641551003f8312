"""Fetching a Dataset's raw data: an http(s) URL, an S3 object, or a scikit-learn dataset."""

from __future__ import annotations

import http.client
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus

import pandas as pd

from mlcycle_contract.api.dataset import BuiltinDataset, DatasetSource, SourceValidators
from mlcycle_trainer import guarded_http
from mlcycle_trainer.addresses import AddressPolicy
from mlcycle_trainer.errors import (
    ACCESS_DENIED,
    SOURCE_ACCESS_DENIED,
    SOURCE_NOT_ALLOWED,
    SOURCE_TOO_LARGE,
    SOURCE_UNAVAILABLE,
    SOURCE_UNREADABLE,
    InvalidInput,
    Transient,
)
from mlcycle_trainer.storage import ObjectMissing, ObjectStore, ObjectTooLarge, S3Location

logger = logging.getLogger(__name__)

MAX_SOURCE_BYTES = 512 * 1024 * 1024
HTTP_TIMEOUT_SECONDS = 30.0
_CHUNK_BYTES = 1024 * 1024
# Worth a retry: the server is overloaded or down for a moment.
_RETRYABLE_HTTP_STATUS = {408, 425, 429, 500, 502, 503, 504}
SOURCE_URL_FIELD = "spec.source.url"


@dataclass(frozen=True)
class Fetched:
    """A source's bytes, and what the source said about them (sent back on the next check)."""

    data: bytes
    validators: SourceValidators


@dataclass(frozen=True)
class Unchanged:
    """The source has not changed since the download `validators` describe: nothing was
    downloaded."""

    evidence: str


def conditional_headers(since: SourceValidators | None) -> dict[str, str]:
    """If-None-Match / If-Modified-Since from the last download's validators, if any."""
    if since is None:
        return {}
    headers = {"If-None-Match": since.etag, "If-Modified-Since": since.last_modified}
    return {name: value for name, value in headers.items() if value}


def fetch_url(url: str, policy: AddressPolicy, max_bytes: int = MAX_SOURCE_BYTES) -> bytes:
    """The body of an http(s) URL, at most `max_bytes`, within HTTP_TIMEOUT_SECONDS per read,
    from addresses the policy permits only."""
    fetched = fetch_url_since(url, policy, None, max_bytes)
    assert isinstance(fetched, Fetched)  # no validators sent, so never Not Modified
    return fetched.data


def fetch_url_since(
    url: str, policy: AddressPolicy, since: SourceValidators | None,
    max_bytes: int = MAX_SOURCE_BYTES,
) -> Fetched | Unchanged:
    """As fetch_url, conditionally: a GET with the last download's validators, which a
    server answers 304 Not Modified, with no body, when the content is the same."""
    headers = conditional_headers(since)
    try:
        with guarded_http.get(url, policy, HTTP_TIMEOUT_SECONDS, headers) as response:
            if response.status == HTTPStatus.NOT_MODIFIED and headers:
                logger.info("GET %s: 304 Not Modified; nothing downloaded", url)
                return Unchanged(f"GET {url} answered 304 Not Modified to "
                                 f"{' and '.join(headers)}")
            if response.status >= 300:
                message = f"GET {url} answered HTTP {response.status}"
                if response.status in _RETRYABLE_HTTP_STATUS:
                    raise Transient(SOURCE_UNAVAILABLE, message)
                raise InvalidInput(SOURCE_UNREADABLE, message)
            declared = int(response.getheader("Content-Length") or 0)
            if declared > max_bytes:
                raise _too_large(url, declared, max_bytes)
            chunks: list[bytes] = []
            received = 0
            while chunk := response.read(_CHUNK_BYTES):
                received += len(chunk)
                if received > max_bytes:
                    raise _too_large(url, received, max_bytes)
                chunks.append(chunk)
            validators = SourceValidators(etag=response.getheader("ETag") or "",
                                          last_modified=response.getheader("Last-Modified") or "")
    except guarded_http.AddressRefused as exc:
        raise InvalidInput(
            SOURCE_NOT_ALLOWED,
            f"{SOURCE_URL_FIELD}: {exc}; the source address policy refuses it",
            SOURCE_URL_FIELD,
        ) from exc
    except guarded_http.BadRedirect as exc:
        raise InvalidInput(SOURCE_UNREADABLE, f"GET {url}: {exc}") from exc
    except (http.client.HTTPException, OSError) as exc:  # OSError: DNS, connect, TLS, timeout
        raise Transient(SOURCE_UNAVAILABLE, f"GET {url} failed: {exc}") from exc
    data = b"".join(chunks)
    logger.info("Fetched %s (%d bytes)", url, len(data))
    return Fetched(data, validators)


def _too_large(url: str, size: int, max_bytes: int) -> InvalidInput:
    return InvalidInput(
        SOURCE_TOO_LARGE, f"{url} has more than {max_bytes} bytes (at least {size}); not ingested"
    )


@contextmanager
def _s3_errors(uri: str, max_bytes: int) -> Iterator[S3Location]:
    """The object's location; storage errors as the Dataset's: missing, too large, denied."""
    location = S3Location.parse(uri)
    try:
        yield location
    except ObjectMissing as exc:
        raise InvalidInput(SOURCE_UNREADABLE, f"{uri} does not exist") from exc
    except ObjectTooLarge as exc:
        raise _too_large(uri, exc.size, max_bytes) from exc
    except InvalidInput as exc:
        if exc.reason != ACCESS_DENIED:
            raise
        raise InvalidInput(
            SOURCE_ACCESS_DENIED,
            f"spec.source.s3: the object storage refused to read bucket {location.bucket!r} key "
            f"{location.key!r}: this namespace's storage user may read only its own prefix",
            field="spec.source.s3",
        ) from exc


def fetch_s3(uri: str, store: ObjectStore, max_bytes: int = MAX_SOURCE_BYTES) -> bytes:
    with _s3_errors(uri, max_bytes) as location:
        data = store.get(location, max_bytes=max_bytes)
    logger.info("Fetched %s (%d bytes)", uri, len(data))
    return data


def fetch_s3_since(
    uri: str, store: ObjectStore, since: SourceValidators | None,
    max_bytes: int = MAX_SOURCE_BYTES,
) -> Fetched | Unchanged:
    """As fetch_s3, after a HEAD: an ETag equal to the last download's downloads nothing.

    An object replaced between the HEAD and the GET keeps the older ETag here; the next check
    then downloads it again, and its content hash makes no new version.
    """
    with _s3_errors(uri, max_bytes) as location:
        etag = store.etag(location)
    if since is not None and since.etag and since.etag == etag:
        logger.info("HEAD %s: ETag %s as before; nothing downloaded", uri, etag)
        return Unchanged(f"HEAD {uri}: ETag {etag} as at the last download")
    return Fetched(fetch_s3(uri, store, max_bytes), SourceValidators(etag=etag))


def describe(source: DatasetSource) -> str:
    """The source as one string, for messages and the report (redact it before showing)."""
    return source.url or source.s3 or f"builtin:{source.builtin}"


def load_builtin(name: BuiltinDataset, target: str) -> pd.DataFrame:
    """A scikit-learn dataset as one frame; its `target` column renamed to `target`.

    When `target` names another column of the dataset, that column is the target and the
    dataset's own target stays a column called `target`.
    """
    from sklearn import datasets

    frame: pd.DataFrame = getattr(datasets, f"load_{name.value}")(as_frame=True).frame
    if target not in frame.columns:
        frame = frame.rename(columns={"target": target})
    logger.info("Loaded builtin dataset %s (%d rows)", name, len(frame))
    return frame


def fetch_raw(
    source: DatasetSource, store: ObjectStore, policy: AddressPolicy,
    since: SourceValidators | None = None,
) -> Fetched | Unchanged:
    """The bytes of a url or s3 source, unless `since` (the last download's validators) shows
    that it has not changed."""
    if source.url is not None:
        return fetch_url_since(source.url, policy, since)
    if source.s3 is not None:
        return fetch_s3_since(source.s3, store, since)
    raise ValueError("a builtin source has no raw bytes")
