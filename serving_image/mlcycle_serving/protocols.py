"""Request decoding and response encoding for the three protocols; no web framework.

- Open Inference Protocol V2: `{"inputs": [{"name", "shape", "datatype", "data"}]}`
  with one tensor [N, F] or one tensor per signature column -> `{"outputs": [...]}`.
- KServe V1: `{"instances": [[...] or {...}, ...]}` -> `{"predictions": [...]}`.
- MLflow scoring: `dataframe_split`, `dataframe_records`, `inputs` or `instances`
  -> `{"predictions": [...]}`.

Each protocol is an `InferenceProtocol`: its `decode_*` turns the parsed JSON body into an
`InferenceRequest` (a 2-D batch, see `decoding`, and the client's request id), its
`encode_*` turns the predictions into the response body. The server runs every protocol
through the same decode -> predict -> encode path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import orjson

from mlcycle_serving.decoding import (
    columns_to_batch,
    flat_to_batch,
    records_to_batch,
    rows_to_batch,
    split_to_batch,
)
from mlcycle_serving.errors import InvalidInput
from mlcycle_serving.schema import ColumnKind, InputSchema, OutputSpec, v2_datatype_of_dtype

V2_NUMERIC_DATATYPES = frozenset(
    {"UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64"}
    | {"FP16", "FP32", "FP64"}
)
V2_DATATYPES = V2_NUMERIC_DATATYPES | {"BOOL", "BYTES"}
MLFLOW_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")


@dataclass(frozen=True, slots=True)
class InferenceRequest:
    """A decoded request: rows in the signature's column order, and the client's id (V2)."""

    batch: np.ndarray
    id: str | None = None


class ServedModel(Protocol):
    """What a response names about the model that answered."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def output_spec(self) -> OutputSpec: ...


Decoder = Callable[[Any, InputSchema], InferenceRequest]
Encoder = Callable[[np.ndarray, InferenceRequest, ServedModel], bytes]


def parse_json(body: bytes) -> Any:
    """Parse a request body; empty or malformed bodies are the client's error."""
    if not body.strip():
        raise InvalidInput("request body is empty: send a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"request body is not valid JSON: {exc}") from None


def _require_object(payload: Any, expected: str) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise InvalidInput(f"request body must be a JSON object with {expected}")
    return payload


def _jsonable(predictions: np.ndarray) -> Any:
    """orjson serialises numeric numpy arrays natively; others go through tolist()."""
    if predictions.dtype.kind in "biuf" and predictions.dtype.itemsize > 2:
        return np.ascontiguousarray(predictions)
    return predictions.tolist()


def _dumps(payload: dict[str, Any]) -> bytes:
    return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)


# --- Open Inference Protocol V2 ---------------------------------------------------


def _v2_shape(tensor: dict[str, Any], field: str) -> list[int]:
    shape = tensor.get("shape")
    if (
        not isinstance(shape, list)
        or not shape
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise InvalidInput(f"{field}.shape must be a list of non-negative integers")
    return shape


def _v2_datatype(tensor: dict[str, Any], field: str, kinds: set[ColumnKind]) -> None:
    datatype = tensor.get("datatype")
    if datatype not in V2_DATATYPES:
        raise InvalidInput(f"{field}.datatype must be one of {sorted(V2_DATATYPES)}")
    if len(kinds) != 1:
        return  # mixed-type tensor: values are checked one by one
    (kind,) = kinds
    fits = {
        ColumnKind.NUMBER: datatype in V2_NUMERIC_DATATYPES,
        ColumnKind.BOOLEAN: datatype == "BOOL",
        ColumnKind.STRING: datatype == "BYTES",
    }[kind]
    if not fits:
        raise InvalidInput(
            f"{field}.datatype is {datatype}, but the model expects {kind.value} values"
        )


def decode_v2_infer(payload: Any, schema: InputSchema) -> InferenceRequest:
    """V2 inference request -> its batch and request id."""
    body = _require_object(payload, '"inputs"')
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInput('"inputs" must be a non-empty list of tensors')
    for i, tensor in enumerate(inputs):
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise InvalidInput(f"inputs[{i}] must be an object with a name")
        if "data" not in tensor:
            raise InvalidInput(f"inputs[{i}] ({tensor['name']!r}) has no data")
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInput('"id" must be a string')
    if len(inputs) == 1 and len(_v2_shape(inputs[0], "inputs[0]")) == 2:
        tensor = inputs[0]
        _v2_datatype(tensor, "inputs[0]", {c.kind for c in schema.columns} or {ColumnKind.NUMBER})
        rows, width = _v2_shape(tensor, "inputs[0]")
        batch = flat_to_batch(tensor["data"], (rows, width), schema, "inputs[0].data")
        return InferenceRequest(batch, request_id)
    if not schema.named:
        raise InvalidInput(
            f"this model takes one input tensor of shape [rows, {schema.width or 'features'}]"
        )
    columns: dict[str, Any] = {}
    for i, tensor in enumerate(inputs):
        field = f"inputs[{i}]"
        name = tensor["name"]
        shape = _v2_shape(tensor, field)
        if name in schema.position:
            _v2_datatype(tensor, field, {schema.columns[schema.position[name]].kind})
        if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
            raise InvalidInput(f"{field} ({name!r}): a column tensor has shape [rows] or [rows, 1]")
        data = tensor["data"]
        if isinstance(data, list) and data and isinstance(data[0], list):
            data = [v[0] if isinstance(v, list) and len(v) == 1 else v for v in data]
        if not isinstance(data, list) or len(data) != shape[0]:
            raise InvalidInput(f"{field} ({name!r}): shape {shape} does not match its data")
        if name in columns:
            raise InvalidInput(f"{field}: column {name!r} given twice")
        columns[name] = data
    return InferenceRequest(columns_to_batch(columns, schema, "inputs"), request_id)


def encode_v2_infer(
    predictions: np.ndarray, request: InferenceRequest, model: ServedModel
) -> bytes:
    response: dict[str, Any] = {"model_name": model.name}
    if model.version:
        response["model_version"] = model.version
    if request.id is not None:
        response["id"] = request.id
    response["outputs"] = [
        {
            "name": model.output_spec.name,
            "datatype": v2_datatype_of_dtype(predictions.dtype),
            "shape": list(predictions.shape),
            "data": _jsonable(predictions.reshape(-1)),
        }
    ]
    return _dumps(response)


# --- KServe V1 and MLflow ----------------------------------------------------------


def _tabular(value: Any, schema: InputSchema, field: str) -> np.ndarray:
    """Rows (lists), records (objects), or columns (an object of lists)."""
    if isinstance(value, dict):
        return columns_to_batch(value, schema, field)
    return rows_to_batch(value, schema, field)


def decode_v1_predict(payload: Any, schema: InputSchema) -> InferenceRequest:
    """KServe V1: `instances` (rows or records); `inputs` is accepted too."""
    body = _require_object(payload, '"instances"')
    if "instances" in body:
        return InferenceRequest(rows_to_batch(body["instances"], schema, "instances"))
    if "inputs" in body:
        return InferenceRequest(_tabular(body["inputs"], schema, "inputs"))
    raise InvalidInput('request body must have "instances": a list of rows')


def decode_mlflow_invocations(payload: Any, schema: InputSchema) -> InferenceRequest:
    """MLflow scoring server formats (JSON only)."""
    body = _require_object(payload, f"one of {list(MLFLOW_FORMATS)}")
    given = [key for key in MLFLOW_FORMATS if key in body]
    if len(given) != 1:
        raise InvalidInput(
            f"request body must have exactly one of {list(MLFLOW_FORMATS)}, got {given or 'none'}"
        )
    unknown = sorted(set(body) - set(MLFLOW_FORMATS) - {"params"})
    if unknown:
        raise InvalidInput(f"unknown fields {unknown}")
    if body.get("params"):
        raise InvalidInput('"params" are not supported by this model')
    key = given[0]
    value = body[key]
    if key == "dataframe_split":
        if not isinstance(value, dict) or "data" not in value:
            raise InvalidInput('"dataframe_split" must be an object with "data" (and "columns")')
        return InferenceRequest(split_to_batch(value.get("columns"), value["data"], schema, key))
    if key == "dataframe_records":
        return InferenceRequest(records_to_batch(value, schema, key))
    return InferenceRequest(_tabular(value, schema, key))


def encode_predictions(
    predictions: np.ndarray, request: InferenceRequest, model: ServedModel
) -> bytes:
    """`{"predictions": [...]}`, the V1 and MLflow response body (names neither)."""
    return _dumps({"predictions": _jsonable(predictions)})


# --- The three protocols, as the server runs them ----------------------------------


@dataclass(frozen=True)
class InferenceProtocol:
    """How one protocol's request body becomes a batch and its predictions a body."""

    decode_payload: Decoder
    encode: Encoder

    def decode(self, body: bytes, schema: InputSchema) -> InferenceRequest:
        return self.decode_payload(parse_json(body), schema)


V2_INFER = InferenceProtocol(decode_v2_infer, encode_v2_infer)
KSERVE_V1_PREDICT = InferenceProtocol(decode_v1_predict, encode_predictions)
MLFLOW_INVOCATIONS = InferenceProtocol(decode_mlflow_invocations, encode_predictions)
