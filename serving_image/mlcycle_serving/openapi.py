"""The OpenAPI 3.0 document of the server's three protocols (`GET /openapi.json`).

Request bodies are described from the loaded model's input schema (column names, JSON
types, which columns take a null), so a client generator or a fuzzer (schemathesis) builds
requests the model answers, and by mutating them, requests it must refuse with a 4xx.
Pure: a function of the model's name and schema.
"""

from __future__ import annotations

from typing import Any

from mlcycle_serving import __version__
from mlcycle_serving.schema import ColumnKind, InputColumn, InputSchema

V2_DATATYPES = ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32",
                "INT64", "FP16", "FP32", "FP64", "BYTES"]
_JSON_TYPES = {ColumnKind.NUMBER: "number", ColumnKind.BOOLEAN: "boolean",
               ColumnKind.STRING: "string"}
_ERROR = {"$ref": "#/components/schemas/Error"}
_ERRORS = {
    "400": "the body does not fit the protocol or the model's signature",
    "404": "no such route, model or version",
    "405": "method not allowed on this route",
    "413": "the body is over the size limit",
    "503": "the model is loading, failed to load, or the server is draining",
}


def _value(column: InputColumn | None) -> dict[str, Any]:
    if column is None:
        return {"type": "number"}
    return {"type": _JSON_TYPES[column.kind], "nullable": column.accepts_missing}


def _row(schema: InputSchema) -> dict[str, Any]:
    """One row: a record of the named columns, or a list of the model's width."""
    if schema.named:
        return {
            "type": "object",
            "properties": {c.name: _value(c) for c in schema.columns},
            "required": list(schema.names),
            "additionalProperties": False,
        }
    width = schema.width
    row: dict[str, Any] = {"type": "array", "items": _value(schema.columns[0] if width else None)}
    if width:
        row |= {"minItems": width, "maxItems": width}
    return row


def _rows(schema: InputSchema) -> dict[str, Any]:
    return {"type": "array", "minItems": 1, "items": _row(schema)}


def _v2_tensor(schema: InputSchema) -> dict[str, Any]:
    names = list(schema.names) if schema.named else [schema.tensor_name]
    return {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "properties": {
            "name": {"type": "string", "enum": names},
            "shape": {"type": "array", "minItems": 1, "maxItems": 2,
                      "items": {"type": "integer", "minimum": 0}},
            "datatype": {"type": "string", "enum": V2_DATATYPES},
            "data": {"type": "array", "items": {}},
        },
    }


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _answers(ok: dict[str, Any], *errors: str) -> dict[str, Any]:
    answers = {"200": {"description": "OK", "content": _json(ok)}}
    for code in ("405", *errors):
        answers[code] = {"description": _ERRORS[code], "content": _json(_ERROR)}
    return answers


def _get(summary: str, ok: dict[str, Any], *errors: str) -> dict[str, Any]:
    return {"get": {"summary": summary, "responses": _answers(ok, *errors)}}


def _post(summary: str, body: dict[str, Any], ok: dict[str, Any]) -> dict[str, Any]:
    return {"post": {
        "summary": summary,
        "requestBody": {"required": True, "content": _json(body)},
        "responses": _answers(ok, "400", "404", "413", "503"),
    }}


def openapi_document(model_name: str, schema: InputSchema) -> dict[str, Any]:
    """The document for a server serving `model_name` with `schema`."""
    name = {"name": "name", "in": "path", "required": True,
            "schema": {"type": "string", "enum": [model_name]}}
    anything = {"type": "object"}
    predictions = {"type": "object", "required": ["predictions"],
                   "properties": {"predictions": {"type": "array"}}}
    rows = _rows(schema)
    mlflow_formats = [
        {"type": "object", "required": [key], "additionalProperties": False,
         "properties": {key: value}}
        for key, value in (
            ("dataframe_records", rows),
            ("dataframe_split", {"type": "object", "required": ["data"], "properties": {
                "columns": {"type": "array", "items": {"type": "string",
                                                       "enum": list(schema.names)}},
                "data": {"type": "array", "minItems": 1, "items": {"type": "array"}}}}),
            ("inputs", rows),
            ("instances", rows),
        )
    ]
    v2_request = {
        "type": "object", "required": ["inputs"],
        "properties": {"id": {"type": "string"},
                       "inputs": {"type": "array", "minItems": 1, "items": _v2_tensor(schema)}},
    }
    v2_response = {"type": "object", "required": ["model_name", "outputs"], "properties": {
        "model_name": {"type": "string"}, "model_version": {"type": "string"},
        "id": {"type": "string"}, "outputs": {"type": "array", "items": {"type": "object"}}}}
    paths: dict[str, Any] = {
        "/": _get("liveness", anything),
        "/ping": _get("readiness (MLflow)", anything, "503"),
        "/health": _get("readiness (MLflow)", anything, "503"),
        "/version": _get("server, model and runtime versions", anything),
        "/v2": _get("V2 server metadata", anything),
        "/v2/health/live": _get("V2 liveness", anything),
        "/v2/health/ready": _get("V2 readiness", anything, "503"),
        "/v1/models": _get("KServe V1 model list", anything),
        "/invocations": _post("MLflow scoring", {"oneOf": mlflow_formats}, predictions),
        "/v1/models/{name}": {**_get("KServe V1 model status", anything, "404"),
                              "parameters": [name]},
        "/v1/models/{name}:predict": {
            **_post("KServe V1 prediction", {"type": "object", "required": ["instances"],
                                             "properties": {"instances": rows}}, predictions),
            "parameters": [name]},
        "/v2/models/{name}": {**_get("V2 model metadata", anything, "404", "503"),
                              "parameters": [name]},
        "/v2/models/{name}/ready": {**_get("V2 model readiness", anything, "404", "503"),
                                    "parameters": [name]},
        "/v2/models/{name}/infer": {**_post("V2 inference", v2_request, v2_response),
                                    "parameters": [name]},
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": f"mlcycle model server: {model_name}", "version": __version__},
        "paths": paths,
        "components": {"schemas": {"Error": {
            "type": "object", "required": ["error"],
            "properties": {"error": {"type": "string"}}}}},
    }
