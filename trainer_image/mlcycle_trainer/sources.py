"""Fetching a Dataset's raw data: an http(s) URL, an S3 object, or a scikit-learn dataset."""

from __future__ import annotations

import http.client
import logging

import pandas as pd

from mlcycle_contract.api.dataset import BuiltinDataset, DatasetSource
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


def fetch_url(url: str, policy: AddressPolicy, max_bytes: int = MAX_SOURCE_BYTES) -> bytes:
    """The body of an http(s) URL, at most `max_bytes`, within HTTP_TIMEOUT_SECONDS per read,
    from addresses the policy permits only."""
    try:
        with guarded_http.get(url, policy, HTTP_TIMEOUT_SECONDS) as response:
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
    return data


def _too_large(url: str, size: int, max_bytes: int) -> InvalidInput:
    return InvalidInput(
        SOURCE_TOO_LARGE, f"{url} has more than {max_bytes} bytes (at least {size}); not ingested"
    )


def fetch_s3(uri: str, store: ObjectStore, max_bytes: int = MAX_SOURCE_BYTES) -> bytes:
    location = S3Location.parse(uri)
    try:
        data = store.get(location, max_bytes=max_bytes)
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
    logger.info("Fetched %s (%d bytes)", uri, len(data))
    return data


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


def fetch_raw(source: DatasetSource, store: ObjectStore, policy: AddressPolicy) -> bytes:
    """The bytes of a url or s3 source."""
    if source.url is not None:
        return fetch_url(source.url, policy)
    if source.s3 is not None:
        return fetch_s3(source.s3, store)
    raise ValueError("a builtin source has no raw bytes")
