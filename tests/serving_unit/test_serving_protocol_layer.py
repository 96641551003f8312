"""The pure protocol layer: decoding to one batch layout, encoding predictions."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson
import pytest

from mlcycle_serving.errors import InvalidInput, error_answer
from mlcycle_serving.logs import JsonFormatter
from mlcycle_serving.protocols import (
    InferenceRequest,
    decode_mlflow_invocations,
    decode_v1_predict,
    decode_v2_infer,
    encode_predictions,
    encode_v2_infer,
)
from mlcycle_serving.schema import (
    ColumnKind,
    InputColumn,
    InputSchema,
    OutputSpec,
    input_schema_from_estimator,
)

SCHEMA = InputSchema(
    columns=(
        InputColumn("a", ColumnKind.NUMBER, "FP64"),
        InputColumn("b", ColumnKind.NUMBER, "INT64"),
    ),
    named=True,
)
EXPECTED = np.array([[1.5, 2.0], [3.0, 4.0]])
OUTPUT = OutputSpec(name="predict", v2_datatype="INT64", shape=(-1,))


@dataclass(frozen=True)
class Served:
    name: str
    version: str
    output_spec: OutputSpec = OUTPUT


@pytest.mark.parametrize(
    "decode",
    [
        lambda: decode_v1_predict({"instances": [[1.5, 2], [3, 4]]}, SCHEMA),
        lambda: decode_v1_predict({"instances": [{"b": 2, "a": 1.5}, {"a": 3, "b": 4}]}, SCHEMA),
        lambda: decode_mlflow_invocations({"inputs": {"a": [1.5, 3], "b": [2, 4]}}, SCHEMA),
        lambda: decode_mlflow_invocations(
            {"dataframe_split": {"columns": ["b", "a"], "data": [[2, 1.5], [4, 3]]}}, SCHEMA
        ),
        lambda: decode_v2_infer(
            {
                "inputs": [
                    {"name": "t", "shape": [2, 2], "datatype": "FP64", "data": [1.5, 2, 3, 4]}
                ]
            },
            SCHEMA,
        ),
        lambda: decode_v2_infer(
            {
                "inputs": [
                    {"name": "b", "shape": [2], "datatype": "INT64", "data": [2, 4]},
                    {"name": "a", "shape": [2, 1], "datatype": "FP64", "data": [[1.5], [3]]},
                ]
            },
            SCHEMA,
        ),
    ],
)
def test_every_format_decodes_to_the_same_batch(decode: object) -> None:
    batch = decode().batch  # type: ignore[operator]
    assert batch.dtype == np.float64
    assert batch.tolist() == EXPECTED.tolist()


def test_integer_columns_refuse_fractions() -> None:
    with pytest.raises(
        InvalidInput, match=re.escape("row 1, column 'b': expected an integer, got 4.5")
    ):
        decode_v1_predict({"instances": [[1, 2], [3, 4.5]]}, SCHEMA)


def test_schema_of_an_estimator_without_signature() -> None:
    class Fitted:
        n_features_in_ = 3

    schema = input_schema_from_estimator(Fitted())
    assert (schema.named, schema.width) == (False, 3)
    unknown = input_schema_from_estimator(None)
    assert unknown.width is None
    assert decode_v1_predict({"instances": [[1, 2, 3, 4, 5]]}, unknown).batch.shape == (1, 5)
    with pytest.raises(InvalidInput, match="row 1 has 2 values, row 0 has 3"):
        decode_v1_predict({"instances": [[1, 2, 3], [1, 2]]}, unknown)


def test_v2_request_id_is_decoded_and_echoed() -> None:
    tensor = {"name": "t", "shape": [1, 2], "datatype": "FP64", "data": [1.5, 2]}
    assert decode_v2_infer({"id": "id-7", "inputs": [tensor]}, SCHEMA).id == "id-7"
    assert decode_v2_infer({"inputs": [tensor]}, SCHEMA).id is None


def test_encode_v2_numbers_strings_and_matrices() -> None:
    def encode(predictions: np.ndarray, served: Served, request_id: str | None) -> Any:
        request = InferenceRequest(np.zeros((len(predictions), 2)), request_id)
        return orjson.loads(encode_v2_infer(predictions, request, served))

    numbers = encode(np.array([0, 2]), Served("iris", "3"), "id-1")
    assert numbers == {
        "model_name": "iris",
        "model_version": "3",
        "id": "id-1",
        "outputs": [{"name": "predict", "datatype": "INT64", "shape": [2], "data": [0, 2]}],
    }
    labels = encode(np.array(["setosa", "virginica"]), Served("iris", ""), None)
    assert labels["outputs"][0] == {
        "name": "predict",
        "datatype": "BYTES",
        "shape": [2],
        "data": ["setosa", "virginica"],
    }
    assert "model_version" not in labels and "id" not in labels
    probabilities = np.array([[0.25, 0.75], [0.5, 0.5]], dtype=np.float32)
    matrix = encode(probabilities, Served("m", ""), None)["outputs"][0]
    assert (matrix["datatype"], matrix["shape"], matrix["data"]) == (
        "FP32",
        [2, 2],
        [0.25, 0.75, 0.5, 0.5],
    )


def test_encode_predictions() -> None:
    def encode(predictions: np.ndarray) -> Any:
        request = InferenceRequest(np.zeros((len(predictions), 2)))
        return orjson.loads(encode_predictions(predictions, request, Served("iris", "3")))

    assert encode(np.array([1.5, 2.5])) == {"predictions": [1.5, 2.5]}
    assert encode(np.array([True, False])) == {"predictions": [True, False]}
    assert encode(np.array(["a", 1], dtype=object)) == {"predictions": ["a", 1]}


def test_errors_map_to_status_and_body() -> None:
    assert error_answer(InvalidInput("bad")) == (400, b'{"error":"bad"}', ())
    assert error_answer(RuntimeError("secret detail")) == (
        500,
        b'{"error":"internal server error"}',
        (),
    )


def test_json_log_lines() -> None:
    record = logging.LogRecord(
        "mlcycle_serving", logging.INFO, "x.py", 1, "Loaded %s", ("m",), None
    )
    record.version = "3"
    line = orjson.loads(JsonFormatter().format(record))
    assert line["message"] == "Loaded m"
    assert line["level"] == "INFO"
    assert line["version"] == "3"
    assert line["time"].endswith("Z")
