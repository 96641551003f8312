"""The model's input and output description, read once from its MLmodel signature.

Decoding needs to know, per input column, its name (if any), what JSON values it
accepts, and whether it may be missing (JSON null: the signature marks the column
optional, or the pipeline imputes it); metadata endpoints need the Open Inference
Protocol datatypes. The signature is read as the MLmodel file stores it (JSON column
or tensor specs), without MLflow. A model without a signature falls back to what the
fitted estimator knows about itself (`feature_names_in_`, `n_features_in_`).
"""

from __future__ import annotations

import enum
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import numpy as np

MLFLOW_TYPE_TO_V2: dict[str, str] = {
    "double": "FP64",
    "float": "FP32",
    "long": "INT64",
    "integer": "INT32",
    "boolean": "BOOL",
    "string": "BYTES",
    "binary": "BYTES",
    "datetime": "BYTES",
}

NUMPY_KIND_TO_V2: dict[str, str] = {"b": "BOOL", "U": "BYTES", "S": "BYTES", "O": "BYTES"}


class ColumnKind(enum.Enum):
    """What JSON values a column accepts."""

    NUMBER = "number"
    BOOLEAN = "boolean"
    STRING = "string"


@dataclass(frozen=True)
class InputColumn:
    name: str
    kind: ColumnKind
    v2_datatype: str
    accepts_missing: bool = False
    """A JSON null is a missing value (NaN to the model), not an error."""


@dataclass(frozen=True)
class OutputSpec:
    name: str
    v2_datatype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class InputSchema:
    """Input columns in the order the model expects them.

    `named` is False for tensor signatures and unnamed estimators: requests then give
    rows as plain lists. `columns` is empty when even the width is unknown.
    """

    columns: tuple[InputColumn, ...]
    named: bool
    tensor_name: str = "input-0"

    # Derived once, on first use: decoding reads them on every request.
    @cached_property
    def names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    @cached_property
    def position(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.names)}

    @cached_property
    def all_numeric(self) -> bool:
        return all(c.kind is ColumnKind.NUMBER for c in self.columns)

    @cached_property
    def integer_positions(self) -> tuple[int, ...]:
        prefixes = ("INT", "UINT")
        return tuple(i for i, c in enumerate(self.columns) if c.v2_datatype.startswith(prefixes))

    @cached_property
    def missing_positions(self) -> frozenset[int]:
        return frozenset(i for i, c in enumerate(self.columns) if c.accepts_missing)

    def accepting_missing(self, positions: Collection[int]) -> InputSchema:
        """The same schema, where the columns at `positions` accept a missing value too."""
        columns = tuple(
            replace(c, accepts_missing=True) if i in positions else c
            for i, c in enumerate(self.columns)
        )
        return InputSchema(columns=columns, named=self.named, tensor_name=self.tensor_name)

    @property
    def width(self) -> int | None:
        """Number of features, or None when unknown."""
        return len(self.columns) or None

    def v2_metadata(self) -> list[dict[str, Any]]:
        """The `inputs` list of the V2 model metadata response."""
        if self.named:
            return [
                {"name": c.name, "datatype": c.v2_datatype, "shape": [-1]} for c in self.columns
            ]
        datatype = self.columns[0].v2_datatype if self.columns else "FP64"
        return [{"name": self.tensor_name, "datatype": datatype, "shape": [-1, self.width or -1]}]


def v2_datatype_of_dtype(dtype: np.dtype[Any]) -> str:
    """V2 datatype name of a numpy dtype (FP64, INT32, BOOL, BYTES, ...)."""
    if dtype.kind in NUMPY_KIND_TO_V2:
        return NUMPY_KIND_TO_V2[dtype.kind]
    prefix = {"f": "FP", "i": "INT", "u": "UINT"}.get(dtype.kind)
    if prefix is None:
        return "BYTES"
    return f"{prefix}{dtype.itemsize * 8}"


def _v2_datatype_of_mlflow_type(mlflow_type: Any) -> str:
    # Scalar column types are names ("double"); arrays, objects and maps are objects.
    return MLFLOW_TYPE_TO_V2.get(mlflow_type, "BYTES") if isinstance(mlflow_type, str) else "BYTES"


def _kind_of_v2(datatype: str) -> ColumnKind:
    if datatype == "BOOL":
        return ColumnKind.BOOLEAN
    if datatype == "BYTES":
        return ColumnKind.STRING
    return ColumnKind.NUMBER


def _column(name: str, v2_datatype: str, accepts_missing: bool = False) -> InputColumn:
    return InputColumn(name, _kind_of_v2(v2_datatype), v2_datatype, accepts_missing)


def _specs(signature: Mapping[str, Any] | None, key: str) -> list[dict[str, Any]] | None:
    """The column or tensor specs of the MLmodel signature's `inputs` or `outputs`."""
    raw = (signature or {}).get(key)
    if not raw:
        return None
    specs = json.loads(raw) if isinstance(raw, str) else raw
    if not isinstance(specs, list) or not all(isinstance(s, dict) for s in specs):
        raise ValueError(f"the signature's {key} are not a list of specs")
    return specs


def _tensor(spec: dict[str, Any]) -> tuple[str, tuple[int, ...]] | None:
    """(V2 datatype, shape) of a tensor spec; None for a column spec."""
    if spec.get("type") != "tensor":
        return None
    tensor = spec["tensor-spec"]
    return v2_datatype_of_dtype(np.dtype(tensor["dtype"])), tuple(tensor["shape"])


def input_schema_from_signature(
    signature: Mapping[str, Any] | None, estimator: Any | None = None
) -> InputSchema:
    """Build the input schema from the MLmodel file's `signature` (or None)."""
    specs = _specs(signature, "inputs")
    if specs is None:
        return input_schema_from_estimator(estimator)
    tensor = _tensor(specs[0]) if specs else None
    if tensor is not None:
        if len(specs) != 1:
            raise ValueError("signatures with several input tensors are not supported")
        datatype, shape = tensor
        width = shape[1] if len(shape) == 2 and shape[1] > 0 else 0
        columns = tuple(_column(str(i), datatype) for i in range(width))
        return InputSchema(
            columns=columns, named=False, tensor_name=specs[0].get("name") or "input-0"
        )
    named = all(spec.get("name") for spec in specs)
    columns = tuple(
        _column(
            str(spec["name"]) if named else str(i),
            _v2_datatype_of_mlflow_type(spec.get("type")),
            accepts_missing=spec.get("required") is False,
        )
        for i, spec in enumerate(specs)
    )
    return InputSchema(columns=columns, named=named)


def input_schema_from_estimator(estimator: Any | None) -> InputSchema:
    """Schema of a model logged without a signature: ask the fitted estimator."""
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None:
        return InputSchema(columns=tuple(_column(str(n), "FP64") for n in names), named=True)
    width = getattr(estimator, "n_features_in_", None)
    if isinstance(width, int) and width > 0:
        return InputSchema(
            columns=tuple(_column(str(i), "FP64") for i in range(width)), named=False
        )
    return InputSchema(columns=(), named=False)


def output_spec_from_signature(signature: Mapping[str, Any] | None) -> OutputSpec:
    """The `outputs` entry of the V2 metadata (one output named after the signature)."""
    specs = _specs(signature, "outputs")
    if not specs:
        return OutputSpec(name="predict", v2_datatype="BYTES", shape=(-1,))
    spec = specs[0]
    name = spec.get("name") or "predict"
    tensor = _tensor(spec)
    if tensor is not None:
        return OutputSpec(name=name, v2_datatype=tensor[0], shape=tensor[1])
    return OutputSpec(
        name=name, v2_datatype=_v2_datatype_of_mlflow_type(spec.get("type")), shape=(-1,)
    )
