"""A JSON null is a missing value where the model can take one, in all three protocols.

The model is the trainer's own pipeline fitted on data with missing numbers and missing
categories (`churn_model` in conftest). A null in a column the model cannot fill in stays a 400
naming the column.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from starlette.testclient import TestClient

from mlcycle_serving.app import create_app
from mlcycle_serving.model import Model

COLUMNS = ["age", "income", "city", "plan"]
ROWS: list[list[Any]] = [
    [None, 52_000.0, "paris", "gold"],  # numbers and categories both missing, one at a time
    [41.0, None, None, "basic"],
    [29.0, 38_000.0, "lyon", None],
    [None, None, None, None],  # everything missing: all imputed
    [35.0, 61_000.0, "nice", "gold"],
]


@pytest.fixture(scope="module")
def client(churn_model: tuple[Any, Path]) -> Iterator[TestClient]:
    model = Model(str(churn_model[1]), name="churn")
    model.load()
    with TestClient(create_app(model)) as test_client:
        yield test_client


def _expected(pipeline: Any) -> list[int]:
    frame = pd.DataFrame(ROWS, columns=COLUMNS).astype(
        {"age": "float64", "income": "float64", "city": object, "plan": object}
    )
    frame = frame.where(frame.notna(), np.nan)
    return [int(v) for v in pipeline.predict(frame)]


def _v2_columns(rows: list[list[Any]]) -> dict[str, Any]:
    types = {"age": "FP64", "income": "FP64", "city": "BYTES", "plan": "BYTES"}
    return {
        "inputs": [
            {
                "name": name,
                "shape": [len(rows)],
                "datatype": types[name],
                "data": [r[j] for r in rows],
            }
            for j, name in enumerate(COLUMNS)
        ]
    }


def _records(rows: list[list[Any]]) -> list[dict[str, Any]]:
    return [dict(zip(COLUMNS, row, strict=True)) for row in rows]


REQUESTS = {
    "mlflow dataframe_split": (
        "/invocations",
        lambda rows: {"dataframe_split": {"columns": COLUMNS, "data": rows}},
    ),
    "mlflow dataframe_records": (
        "/invocations",
        lambda rows: {"dataframe_records": _records(rows)},
    ),
    "mlflow inputs": ("/invocations", lambda rows: {"inputs": rows}),
    "kserve v1 instances": ("/v1/models/churn:predict", lambda rows: {"instances": rows}),
    "kserve v1 records": ("/v1/models/churn:predict", lambda rows: {"instances": _records(rows)}),
    "v2 column tensors": ("/v2/models/churn/infer", _v2_columns),
    "v2 one tensor": (
        "/v2/models/churn/infer",
        lambda rows: {
            "inputs": [{"name": "x", "shape": [len(rows), 4], "datatype": "BYTES", "data": rows}]
        },
    ),
}


def _predictions(answer: dict[str, Any]) -> list[int]:
    if "outputs" in answer:
        return [int(v) for v in answer["outputs"][0]["data"]]
    return [int(v) for v in answer["predictions"]]


@pytest.mark.parametrize("protocol", REQUESTS)
def test_nulls_are_imputed_by_the_pipeline_in_every_protocol(
    client: TestClient, churn_model: tuple[Any, Path], protocol: str
) -> None:
    path, body = REQUESTS[protocol]
    response = client.post(path, json=body(ROWS))
    assert response.status_code == 200, response.text
    assert _predictions(response.json()) == _expected(churn_model[0])


def test_the_signature_marks_the_columns_missing_in_training_optional(
    client: TestClient, churn_model: tuple[Any, Path]
) -> None:
    """`income` and `plan` had no missing value in training (required in the signature):
    the pipeline's imputers are what makes them accept one."""
    mlmodel = yaml.safe_load((churn_model[1] / "MLmodel").read_text())
    columns = json.loads(mlmodel["signature"]["inputs"])
    required = {column["name"]: column["required"] for column in columns}
    assert required == {"age": False, "income": True, "city": False, "plan": True}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/invocations", {"inputs": [[5.1, None, 1.4, 0.2]]}),
        (
            "/invocations",
            {
                "dataframe_split": {
                    "columns": [
                        "sepal length (cm)",
                        "sepal width (cm)",
                        "petal length (cm)",
                        "petal width (cm)",
                    ],
                    "data": [[5.1, None, 1.4, 0.2]],
                }
            },
        ),
        ("/v1/models/iris:predict", {"instances": [[5.1, None, 1.4, 0.2]]}),
        (
            "/v2/models/iris/infer",
            {
                "inputs": [
                    {
                        "name": "x",
                        "shape": [1, 4],
                        "datatype": "FP64",
                        "data": [5.1, None, 1.4, 0.2],
                    }
                ]
            },
        ),
    ],
)
def test_a_null_the_model_cannot_fill_in_is_a_400_naming_the_column(
    path: str, body: dict[str, Any], iris_model: Model
) -> None:
    with TestClient(create_app(iris_model)) as http:
        response = http.post(path, json=body)
    assert response.status_code == 400
    message = response.json()["error"]
    assert "column 'sepal width (cm)': expected a number, got null" in message
    assert "cannot fill in a missing value" in message


def test_a_null_still_has_to_be_in_the_right_place(client: TestClient) -> None:
    """Nulls are values, not a way around the column count or the types of the others."""
    short = client.post("/invocations", json={"inputs": [[None, None, None]]})
    assert short.status_code == 400
    assert "row 0 has 3 values, the model expects 4" in short.json()["error"]
    wrong = client.post("/invocations", json={"inputs": [[None, "rich", None, None]]})
    assert wrong.status_code == 400
    assert "column 'income': expected a number, got string 'rich'" in wrong.json()["error"]
