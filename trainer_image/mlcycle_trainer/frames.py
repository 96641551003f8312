"""Raw bytes to a validated, normalised frame: the one shape every snapshot has.

Normalised means: column names stripped; the selected features in the order the source
(or `features`) gives them, then the target last, so positional inputs to a served model
follow the order users know from their data; dtypes reduced to int64, float64, bool and
string; a fresh RangeIndex.
"""

from __future__ import annotations

import gzip
import io

import pandas as pd
import pyarrow as pa
from pandas.api import types

from mlcycle_contract.api.dataset import ColumnSchema
from mlcycle_trainer.errors import (
    EMPTY_DATASET,
    FEATURE_COLUMN_MISSING,
    INVALID_COLUMNS,
    NO_FEATURE_COLUMNS,
    SOURCE_UNREADABLE,
    TARGET_COLUMN_MISSING,
    InvalidInput,
    name_list,
)

CANONICAL_DTYPES = ("int64", "float64", "bool", "string")
_INT64_MAX = 2**63 - 1


def parse(data: bytes, data_format: str, source: str) -> pd.DataFrame:
    """A csv (optionally gzip-compressed) or parquet file as a frame."""
    if not data:
        raise InvalidInput(EMPTY_DATASET, f"{source} is empty")
    try:
        if data_format == "parquet":
            return pd.read_parquet(io.BytesIO(data))
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        return pd.read_csv(io.BytesIO(data))
    except pd.errors.EmptyDataError as exc:
        raise InvalidInput(EMPTY_DATASET, f"{source} has no columns") from exc
    except (
        pd.errors.ParserError,
        UnicodeDecodeError,
        pa.ArrowException,
        OSError,
        ValueError,
    ) as exc:
        raise InvalidInput(
            SOURCE_UNREADABLE, f"{source} is not a readable {data_format} file: {_first_line(exc)}"
        ) from exc


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def normalise(frame: pd.DataFrame, target: str, features: list[str] | None) -> pd.DataFrame:
    """Validate the columns and return the normalised frame (features in order, target last)."""
    frame = frame.reset_index(drop=True).rename(columns=lambda name: str(name).strip())
    names = [str(name) for name in frame.columns]
    if any(not name for name in names):
        raise InvalidInput(INVALID_COLUMNS, "the data has a column without a name")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise InvalidInput(INVALID_COLUMNS, f"duplicate column names: {name_list(duplicates)}")
    if target not in names:
        raise InvalidInput(
            TARGET_COLUMN_MISSING,
            f"target column {target!r} is not in the data; its columns are: {name_list(names)}",
        )
    if features is not None:
        missing = [name for name in features if name not in names]
        if missing:
            raise InvalidInput(
                FEATURE_COLUMN_MISSING,
                f"feature columns {name_list(missing)} are not in the data; "
                f"its columns are: {name_list(names)}",
            )
    selected = [name for name in (features if features is not None else names) if name != target]
    if not selected:
        raise InvalidInput(NO_FEATURE_COLUMNS, f"the data has no columns besides target {target!r}")
    if len(frame) == 0:
        raise InvalidInput(EMPTY_DATASET, "the data has a header but no rows")
    if frame[target].isna().all():
        raise InvalidInput(EMPTY_DATASET, f"target column {target!r} has no values")
    columns = {name: normalise_column(frame[name]) for name in [*selected, target]}
    return pd.DataFrame(columns).reset_index(drop=True)


def normalise_column(column: pd.Series) -> pd.Series:
    """The column in its canonical dtype: int64, float64, bool or string."""
    dtype = column.dtype
    if types.is_bool_dtype(dtype):
        return column.astype("bool") if not column.hasnans else column.astype("float64")
    if types.is_integer_dtype(dtype):
        if column.hasnans or (types.is_unsigned_integer_dtype(dtype) and column.max() > _INT64_MAX):
            return column.astype("float64")
        return column.astype("int64")
    if types.is_float_dtype(dtype):
        return column.astype("float64")
    return column.astype("string")


def schema(frame: pd.DataFrame) -> list[ColumnSchema]:
    return [ColumnSchema(name=str(name), dtype=str(dtype)) for name, dtype in frame.dtypes.items()]
