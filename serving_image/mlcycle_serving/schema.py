"""The model's input and output description, read once from its MLflow signature.

Decoding needs to know, per input column, its name (if any) and what JSON values it
accepts; metadata endpoints need the Open Inference Protocol datatypes. A model
without a signature falls back to what the fitted estimator knows about itself
(`feature_names_in_`, `n_features_in_`).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
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
    # DataType members have a .name ("double"); Array/Object/Map types do not.
    return MLFLOW_TYPE_TO_V2.get(str(getattr(mlflow_type, "name", "")), "BYTES")


def _kind_of_v2(datatype: str) -> ColumnKind:
    if datatype == "BOOL":
        return ColumnKind.BOOLEAN
    if datatype == "BYTES":
        return ColumnKind.STRING
    return ColumnKind.NUMBER


def _column(name: str, v2_datatype: str) -> InputColumn:
    return InputColumn(name=name, kind=_kind_of_v2(v2_datatype), v2_datatype=v2_datatype)


def input_schema_from_signature(signature: Any, estimator: Any | None = None) -> InputSchema:
    """Build the input schema from an MLflow `ModelSignature` (or None)."""
    inputs = getattr(signature, "inputs", None)
    if inputs is None:
        return input_schema_from_estimator(estimator)
    specs: Sequence[Any] = inputs.inputs
    if inputs.is_tensor_spec():
        if len(specs) != 1:
            raise ValueError("signatures with several input tensors are not supported")
        spec = specs[0]
        datatype = v2_datatype_of_dtype(np.dtype(spec.type))
        shape = tuple(spec.shape)
        width = shape[1] if len(shape) == 2 and shape[1] > 0 else 0
        columns = tuple(_column(str(i), datatype) for i in range(width))
        return InputSchema(columns=columns, named=False, tensor_name=spec.name or "input-0")
    named = inputs.has_input_names()
    columns = tuple(
        _column(spec.name if named else str(i), _v2_datatype_of_mlflow_type(spec.type))
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


def output_spec_from_signature(signature: Any) -> OutputSpec:
    """The `outputs` entry of the V2 metadata (one output named after the signature)."""
    outputs = getattr(signature, "outputs", None)
    if outputs is None or not outputs.inputs:
        return OutputSpec(name="predict", v2_datatype="BYTES", shape=(-1,))
    spec = outputs.inputs[0]
    if outputs.is_tensor_spec():
        return OutputSpec(
            name=spec.name or "predict",
            v2_datatype=v2_datatype_of_dtype(np.dtype(spec.type)),
            shape=tuple(spec.shape),
        )
    return OutputSpec(
        name=spec.name or "predict",
        v2_datatype=_v2_datatype_of_mlflow_type(spec.type),
        shape=(-1,),
    )
