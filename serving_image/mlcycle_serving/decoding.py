"""Turn decoded JSON (rows, records, columns, flat tensors) into a validated 2-D batch.

Pure functions, no web framework: every function returns an array of shape
(rows, features) in the signature's column order, float64 when all columns are
numeric, object otherwise; or raises `InvalidInput` naming the first problem
(which row, which column, what was wrong). A JSON null is a missing value (NaN) in
a column that accepts one (`InputColumn.accepts_missing`), and an error elsewhere. The
numeric fast path is one `np.array` call plus a scan for booleans (which numpy would
quietly turn into 0/1); the slow, precise path only runs for nulls and bad input.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from mlcycle_serving.errors import InvalidInput
from mlcycle_serving.schema import ColumnKind, InputSchema

Where = Callable[[int, int], str]
"""Describes the position (i, j) of a value in the request, for error messages."""

_KIND_TYPES: dict[ColumnKind, tuple[type, ...]] = {
    ColumnKind.NUMBER: (int, float),
    ColumnKind.BOOLEAN: (bool,),
    ColumnKind.STRING: (str,),
}


def _describe_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, str):
        shown = value if len(value) <= 20 else value[:17] + "..."
        return f"string {shown!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return repr(value)


def _column_label(schema: InputSchema, j: int) -> str:
    if schema.named and j < len(schema.columns):
        return f"column {schema.names[j]!r}"
    return f"column {j}"


def _row_where(schema: InputSchema) -> Where:
    return lambda i, j: f"row {i}, {_column_label(schema, j)}"


def _value_error(value: Any, kind: ColumnKind, where: str) -> InvalidInput:
    expected = {"number": "a number", "boolean": "a boolean", "string": "a string"}[kind.value]
    problem = f"{where}: expected {expected}, got {_describe_value(value)}"
    if value is None:
        problem += " (the model needs this column: it cannot fill in a missing value)"
    return InvalidInput(problem)


def _check_value(value: Any, kind: ColumnKind, where: str) -> None:
    if kind is ColumnKind.NUMBER and isinstance(value, bool):
        raise _value_error(value, kind, where)
    if not isinstance(value, _KIND_TYPES[kind]):
        raise _value_error(value, kind, where)


def _contains_bool(values: Sequence[Any], ndim: int) -> bool:
    if ndim == 1:
        return bool in set(map(type, values))
    return any(bool in set(map(type, row)) for row in values)


def _explain_numbers(values: Any, where: Where, field: str) -> InvalidInput:
    """Find the first non-number (or ragged row) in a nested list."""
    if not isinstance(values, list):
        return InvalidInput(f"{field} must be a list, got {_describe_value(values)}")
    width: int | None = None
    for i, row in enumerate(values):
        if not isinstance(row, list):
            try:
                _check_value(row, ColumnKind.NUMBER, f"{field}[{i}]")
            except InvalidInput as exc:
                return exc
            continue
        if width is None:
            width = len(row)
        elif len(row) != width:
            return InvalidInput(
                f"{field}: row {i} has {len(row)} values, row 0 has {width} (ragged rows)"
            )
        for j, value in enumerate(row):
            try:
                _check_value(value, ColumnKind.NUMBER, where(i, j))
            except InvalidInput as exc:
                return exc
    return InvalidInput(f"{field}: mixes rows (lists) and single values")


def numbers(values: Any, where: Where, field: str) -> np.ndarray:
    """`np.array` of a (nested) list of JSON numbers; precise errors otherwise."""
    try:
        array = np.array(values)
    except (ValueError, TypeError):
        raise _explain_numbers(values, where, field) from None
    if array.dtype.kind not in "iuf" or _contains_bool(values, array.ndim):
        raise _explain_numbers(values, where, field)
    return array


def _check_width(array: np.ndarray, schema: InputSchema, field: str) -> np.ndarray:
    width = schema.width
    if array.ndim == 1 and width == 1:
        array = array.reshape(-1, 1)
    if array.ndim != 2:
        expected = f"{width} values" if width else "a list of values"
        raise InvalidInput(f"{field} must be a list of rows, each a list of {expected}")
    if width is not None and array.shape[1] != width:
        raise InvalidInput(f"{field}: rows have {array.shape[1]} values, the model expects {width}")
    return array


def _check_integers(array: np.ndarray, schema: InputSchema, field: str) -> None:
    for j in schema.integer_positions:
        column = array[:, j]
        fractional = np.flatnonzero((column != np.floor(column)) & ~np.isnan(column))
        if fractional.size:
            i = int(fractional[0])
            raise InvalidInput(
                f"{field}: row {i}, {_column_label(schema, j)}: expected an integer, "
                f"got {float(column[i])!r}"
            )


def _mixed_rows(rows: list[Any], schema: InputSchema, field: str) -> np.ndarray:
    """Object array, value by value: for string or boolean columns, or missing values
    (which become NaN)."""
    width = len(schema.columns)
    batch = np.empty((len(rows), width), dtype=object)
    where = _row_where(schema)
    integers = frozenset(schema.integer_positions)
    for i, row in enumerate(rows):
        if not isinstance(row, list):
            raise InvalidInput(f"{field}[{i}] must be a list of {width} values")
        if len(row) != width:
            raise InvalidInput(f"{field}: row {i} has {len(row)} values, the model expects {width}")
        for j, (value, column) in enumerate(zip(row, schema.columns, strict=True)):
            if value is None and column.accepts_missing:
                continue
            _check_value(value, column.kind, where(i, j))
            if j in integers and isinstance(value, float) and not value.is_integer():
                raise InvalidInput(f"{field}: {where(i, j)}: expected an integer, got {value!r}")
        batch[i] = [np.nan if value is None else value for value in row]
    return batch


def _require_rows(rows: Any, field: str) -> list[Any]:
    if not isinstance(rows, list):
        raise InvalidInput(f"{field} must be a list of rows, got {_describe_value(rows)}")
    if not rows:
        raise InvalidInput(f"{field} is empty: send at least one row")
    return rows


def rows_to_batch(rows: Any, schema: InputSchema, field: str) -> np.ndarray:
    """Rows as lists (`[[5.1, 3.5, ...], ...]`) or as records (`[{"col": 5.1}, ...]`)."""
    rows = _require_rows(rows, field)
    if isinstance(rows[0], dict):
        return records_to_batch(rows, schema, field)
    if schema.columns and not schema.all_numeric:
        return _mixed_rows(rows, schema, field)
    try:
        array = _check_width(numbers(rows, _row_where(schema), field), schema, field)
    except InvalidInput:
        if not schema.missing_positions:
            raise
        return _mixed_rows(rows, schema, field).astype(np.float64)
    if schema.integer_positions:
        _check_integers(array, schema, field)
    return array.astype(np.float64, copy=False)


def _name_mismatch(given: Sequence[str], schema: InputSchema, where: str) -> InvalidInput:
    missing = [name for name in schema.names if name not in set(given)]
    extra = [name for name in given if name not in schema.position]
    parts = []
    if missing:
        parts.append(f"missing {missing}")
    if extra:
        parts.append(f"unknown {extra}")
    if not parts:
        parts.append("duplicate names")
    return InvalidInput(
        f"{where}: wrong columns: {', '.join(parts)}; expected {list(schema.names)}"
    )


def _require_named(schema: InputSchema, field: str) -> None:
    if not schema.named:
        raise InvalidInput(
            f"{field}: this model's inputs have no column names; send rows as lists of values"
        )


def records_to_batch(records: Any, schema: InputSchema, field: str) -> np.ndarray:
    """Records: `[{"col_a": 1.0, "col_b": 2.0}, ...]`, any key order."""
    records = _require_rows(records, field)
    _require_named(schema, field)
    expected = schema.position.keys()
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise InvalidInput(f"{field}[{i}] must be an object like record 0")
        if record.keys() != expected:
            raise _name_mismatch(list(record), schema, f"{field}[{i}]")
    names = schema.names
    return rows_to_batch([[record[name] for name in names] for record in records], schema, field)


def columns_to_batch(columns: Mapping[str, Any], schema: InputSchema, field: str) -> np.ndarray:
    """Columns: `{"col_a": [1.0, 2.0], "col_b": [3.0, 4.0]}` (a scalar is one row)."""
    _require_named(schema, field)
    if columns.keys() != schema.position.keys():
        raise _name_mismatch(list(columns), schema, field)
    column_values = [
        value if isinstance(value, list) else [value]
        for value in (columns[name] for name in schema.names)
    ]
    for name, values in zip(schema.names, column_values, strict=True):
        if len(values) != len(column_values[0]):
            raise InvalidInput(
                f"{field}: column {name!r} has {len(values)} values, "
                f"column {schema.names[0]!r} has {len(column_values[0])}"
            )
    return rows_to_batch([list(row) for row in zip(*column_values, strict=True)], schema, field)


def split_to_batch(column_names: Any, data: Any, schema: InputSchema, field: str) -> np.ndarray:
    """MLflow's `dataframe_split`: optional column names and rows in that order."""
    if column_names is None:
        return rows_to_batch(data, schema, f"{field}.data")
    if not isinstance(column_names, list) or not all(isinstance(c, str) for c in column_names):
        raise InvalidInput(f"{field}.columns must be a list of column names")
    _require_named(schema, field)
    if len(column_names) != len(schema.columns) or set(column_names) != schema.position.keys():
        raise _name_mismatch(column_names, schema, f"{field}.columns")
    if tuple(column_names) != schema.names:
        data = _reorder_columns(data, column_names, schema, f"{field}.data")
    return rows_to_batch(data, schema, f"{field}.data")


def _reorder_columns(
    data: Any, column_names: list[str], schema: InputSchema, field: str
) -> list[list[Any]]:
    """Rows in the client's column order -> rows in the signature's column order."""
    rows = _require_rows(data, field)
    order = [column_names.index(name) for name in schema.names]
    width = len(order)
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != width:
            raise InvalidInput(f"{field}[{i}] must be a list of {width} values, one per column")
    return [[row[k] for k in order] for row in rows]


def flat_to_batch(data: Any, shape: tuple[int, int], schema: InputSchema, field: str) -> np.ndarray:
    """A V2 tensor: `data` flat (row-major) or nested, declared `shape` [rows, features]."""
    rows, width = shape
    if isinstance(data, list) and data and not isinstance(data[0], list):
        if len(data) != rows * width:
            raise InvalidInput(
                f"{field}: shape {list(shape)} needs {rows * width} values, got {len(data)}"
            )
        data = [data[i * width : (i + 1) * width] for i in range(rows)]
    batch = rows_to_batch(data, schema, field)
    if batch.shape != (rows, width):
        raise InvalidInput(f"{field}: data has shape {list(batch.shape)}, declared {list(shape)}")
    return batch
