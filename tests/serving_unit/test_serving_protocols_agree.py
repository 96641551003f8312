"""All protocols answer what the estimator's own `predict` answers."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

from mlcycle_serving.app import create_app
from mlcycle_serving.model import Model


def _expected(model_dir: Any, features: pd.DataFrame) -> list[Any]:
    import mlflow.sklearn

    return list(mlflow.sklearn.load_model(str(model_dir)).predict(features).tolist())


def _requests_for(frame: pd.DataFrame, named: bool) -> dict[str, tuple[str, dict[str, Any]]]:
    rows = frame.to_numpy().tolist()
    columns = list(frame.columns)
    records = frame.to_dict(orient="records")
    width = len(columns)
    requests: dict[str, tuple[str, dict[str, Any]]] = {
        "v2 flat tensor": (
            "/v2/models/{name}/infer",
            {
                "id": "req-1",
                "inputs": [
                    {
                        "name": "input-0",
                        "shape": [len(rows), width],
                        "datatype": "FP64",
                        "data": [v for row in rows for v in row],
                    }
                ],
            },
        ),
        "v2 nested tensor": (
            "/v2/models/{name}/infer",
            {
                "inputs": [
                    {"name": "x", "shape": [len(rows), width], "datatype": "FP32", "data": rows}
                ]
            },
        ),
        "v1 rows": ("/v1/models/{name}:predict", {"instances": rows}),
        "mlflow inputs": ("/invocations", {"inputs": rows}),
        "mlflow instances": ("/invocations", {"instances": rows}),
        "mlflow split without columns": ("/invocations", {"dataframe_split": {"data": rows}}),
    }
    if named:
        reversed_columns = columns[::-1]
        requests |= {
            "v2 one tensor per column": (
                "/v2/models/{name}/infer",
                {
                    "inputs": [
                        {
                            "name": column,
                            "shape": [len(rows)],
                            "datatype": "FP64",
                            "data": frame[column].tolist(),
                        }
                        for column in reversed_columns
                    ]
                },
            ),
            "v1 records": ("/v1/models/{name}:predict", {"instances": records}),
            "mlflow split": (
                "/invocations",
                {"dataframe_split": {"columns": columns, "data": rows}},
            ),
            "mlflow split, other column order": (
                "/invocations",
                {
                    "dataframe_split": {
                        "columns": reversed_columns,
                        "data": frame[reversed_columns].to_numpy().tolist(),
                    }
                },
            ),
            "mlflow records": ("/invocations", {"dataframe_records": records}),
            "mlflow inputs as columns": (
                "/invocations",
                {"inputs": {c: frame[c].tolist() for c in columns}},
            ),
        }
    return requests


def _predictions(response_json: dict[str, Any]) -> list[Any]:
    if "outputs" in response_json:
        (output,) = response_json["outputs"]
        assert output["shape"][0] == len(output["data"])
        return list(output["data"])
    return list(response_json["predictions"])


@pytest.mark.parametrize("named", [True, False], ids=["named-signature", "tensor-signature"])
def test_every_protocol_returns_the_estimators_predictions(
    named: bool,
    iris: tuple[pd.DataFrame, pd.Series],
    iris_model: Model,
    iris_tensor_model: Model,
    iris_model_dir: Any,
    iris_tensor_model_dir: Any,
) -> None:
    features = iris[0].iloc[::7]  # 22 rows of all three classes
    model, model_dir = (
        (iris_model, iris_model_dir) if named else (iris_tensor_model, iris_tensor_model_dir)
    )
    expected = _expected(model_dir, features if named else features.to_numpy())
    assert len(set(expected)) == 3
    with TestClient(create_app(model)) as client:
        for label, (route, body) in _requests_for(features, named).items():
            path = route.format(name=model.name)
            response = client.post(path, json=body)
            assert response.status_code == 200, (label, response.text)
            assert _predictions(response.json()) == expected, label


def test_v2_response_shape(client: TestClient, iris: tuple[pd.DataFrame, pd.Series]) -> None:
    row = iris[0].iloc[0].tolist()
    body = {
        "id": "abc",
        "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": row}],
    }
    response = client.post("/v2/models/iris/infer", json=body)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "model_name": "iris",
        "id": "abc",
        "outputs": [{"name": "predict", "datatype": "INT64", "shape": [1], "data": [0]}],
    }


def test_dataframe_model_with_strings_and_integers(
    mixed_model: Model, mixed_model_dir: Any, mixed_frame: tuple[pd.DataFrame, np.ndarray]
) -> None:
    frame = mixed_frame[0].iloc[:12]
    expected = _expected(mixed_model_dir, frame)
    records = frame.to_dict(orient="records")
    with TestClient(create_app(mixed_model)) as client:
        for path, body in [
            ("/invocations", {"dataframe_records": records}),
            ("/v1/models/mixed:predict", {"instances": frame.to_numpy().tolist()}),
            (
                "/v2/models/mixed/infer",
                {
                    "inputs": [
                        {
                            "name": "size",
                            "shape": [12],
                            "datatype": "FP64",
                            "data": frame["size"].tolist(),
                        },
                        {
                            "name": "count",
                            "shape": [12, 1],
                            "datatype": "INT64",
                            "data": [[v] for v in frame["count"]],
                        },
                        {
                            "name": "color",
                            "shape": [12],
                            "datatype": "BYTES",
                            "data": frame["color"].tolist(),
                        },
                    ]
                },
            ),
        ]:
            response = client.post(path, json=body)
            assert response.status_code == 200, (path, response.text)
            assert _predictions(response.json()) == expected, path
        metadata = client.get("/v2/models/mixed").json()
        assert metadata["inputs"] == [
            {"name": "size", "datatype": "FP64", "shape": [-1]},
            {"name": "count", "datatype": "INT64", "shape": [-1]},
            {"name": "color", "datatype": "BYTES", "shape": [-1]},
        ]


def test_large_requests_are_decoded_off_the_event_loop_and_still_agree(
    client: TestClient, iris: tuple[pd.DataFrame, pd.Series], iris_model_dir: Any
) -> None:
    features = pd.concat([iris[0]] * 200, ignore_index=True)  # 30,000 rows, ~700 kB of JSON
    expected = _expected(iris_model_dir, features)
    rows = features.to_numpy().tolist()
    v1 = client.post("/v1/models/iris:predict", json={"instances": rows})
    assert len(v1.request.content) > 256 * 1024
    assert v1.json()["predictions"] == expected
    v2_body = {"inputs": [{"name": "x", "shape": [len(rows), 4], "datatype": "FP64", "data": rows}]}
    assert _predictions(client.post("/v2/models/iris/infer", json=v2_body).json()) == expected
    assert client.post("/invocations", json={"inputs": rows}).json()["predictions"] == expected
