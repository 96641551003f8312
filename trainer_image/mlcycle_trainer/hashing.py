"""The content hash of a normalised frame: its Dataset version.

The hash covers a canonical encoding of the frame (column names, dtypes and values, in
order), not a file format's bytes, so it does not change with pandas' or pyarrow's
version; identical content gives the identical hash, on any machine, in any run.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Protocol

import numpy as np
import pandas as pd

from mlcycle_trainer.frames import CANONICAL_DTYPES

VERSION_LENGTH = 16
_ENCODING_TAG = b"mlcycle-content-v1\n"


class _Digest(Protocol):
    def update(self, data: bytes, /) -> None: ...


def content_hash(frame: pd.DataFrame) -> str:
    """sha256 (hex) of the frame's canonical encoding; the frame must be normalised."""
    digest = hashlib.sha256(_ENCODING_TAG)
    digest.update(struct.pack("<qq", len(frame), len(frame.columns)))
    for name, column in frame.items():
        dtype = str(column.dtype)
        if dtype not in CANONICAL_DTYPES:
            raise ValueError(f"column {name!r} has dtype {dtype}; normalise the frame first")
        _update(digest, str(name).encode("utf-8"))
        _update(digest, dtype.encode("utf-8"))
        for part in _column_bytes(column, dtype):
            _update(digest, part)
    return digest.hexdigest()


def dataset_version(frame: pd.DataFrame) -> str:
    """The first 16 hex characters of the content hash."""
    return content_hash(frame)[:VERSION_LENGTH]


def _update(digest: _Digest, data: bytes) -> None:
    """Length-prefixed, so where one part ends and the next begins is hashed too."""
    digest.update(struct.pack("<q", len(data)))
    digest.update(data)


def _column_bytes(column: pd.Series, dtype: str) -> list[bytes]:
    if dtype == "int64":
        return [column.to_numpy(dtype="<i8").tobytes()]
    if dtype == "bool":
        return [column.to_numpy(dtype=np.uint8).tobytes()]
    if dtype == "float64":
        values = column.to_numpy(dtype="<f8", copy=True)
        missing = np.isnan(values)
        values[missing] = 0.0  # NaN payloads differ; the mask says where values are missing
        return [np.packbits(missing).tobytes(), values.tobytes()]
    missing = column.isna().to_numpy(dtype=bool)
    encoded = [
        b"" if absent else str(value).encode("utf-8")
        for value, absent in zip(column.to_numpy(dtype=object), missing, strict=True)
    ]
    lengths = np.array(
        [-1 if absent else len(data) for data, absent in zip(encoded, missing, strict=True)],
        dtype="<i8",
    )
    return [lengths.tobytes(), b"".join(encoded)]
