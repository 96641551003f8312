"""A Dataset version's snapshot: written once, and read back only while its content still
hashes to that version.

The key ends in the version (a content hash), so a second write of the same key carries the
same content; the storage refuses it all the same, which keeps a snapshot from being
overwritten. Storage can still be changed behind our back (deleted and written again), so
training re-hashes what it reads.
"""

from __future__ import annotations

import io
import logging

import pandas as pd

from mlcycle_trainer.errors import SNAPSHOT_CORRUPTED, SNAPSHOT_UNREADABLE, InvalidInput
from mlcycle_trainer.hashing import dataset_version
from mlcycle_trainer.storage import ObjectMissing, ObjectStore, S3Location

logger = logging.getLogger(__name__)

CONTENT_TYPE = "application/vnd.apache.parquet"


def parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False, engine="pyarrow", compression="zstd")
    return buffer.getvalue()


def write_snapshot(store: ObjectStore, location: S3Location, frame: pd.DataFrame) -> None:
    """Store the normalised frame under `location`, unless a snapshot is there already (the
    same content ingested again, e.g. a refreshed source whose headers alone changed: a HEAD
    spares the upload; the conditional put still guards a race)."""
    if store.exists(location) or not store.put_new(location, parquet_bytes(frame), CONTENT_TYPE):
        logger.info("Snapshot %s exists already; kept as it is", location.uri)


def read_snapshot(store: ObjectStore, uri: str, version: str) -> pd.DataFrame:
    """The snapshot of dataset version `version`, checked against that content hash."""
    try:
        data = store.get(S3Location.parse(uri))
    except ObjectMissing as exc:
        raise InvalidInput(SNAPSHOT_UNREADABLE, f"dataset snapshot {uri} does not exist") from exc
    try:
        frame = pd.read_parquet(io.BytesIO(data))
    except Exception as exc:
        raise InvalidInput(
            SNAPSHOT_UNREADABLE, f"{uri} is not a readable parquet file: {exc}"
        ) from exc
    try:
        actual = dataset_version(frame)
    except ValueError as exc:  # a column no ingestion writes
        actual = f"nothing ({exc})"
    if actual != version:
        raise InvalidInput(
            SNAPSHOT_CORRUPTED,
            f"the snapshot of dataset version {version} ({uri}) hashes to {actual}: it was "
            "changed after ingestion; nothing was trained (delete it and ingest the Dataset "
            "again to restore it)",
        )
    logger.info("Snapshot %s matches dataset version %s", uri, version)
    return frame
