"""Every bad request gets the right 4xx and a message naming the problem; serving goes on."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from mlcycle_serving.app import create_app
from mlcycle_serving.asgi_io import read_body
from mlcycle_serving.errors import PayloadTooLarge
from mlcycle_serving.model import Model
from mlcycle_serving.settings import ServerSettings

ROW = [5.1, 3.5, 1.4, 0.2]
COLUMNS = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]
RECORD = dict(zip(COLUMNS, ROW, strict=True))
V2 = "/v2/models/iris/infer"
V1 = "/v1/models/iris:predict"
MLFLOW = "/invocations"


def tensor(data: Any, shape: list[int] | None = None, datatype: str = "FP64") -> dict[str, Any]:
    return {"inputs": [{"name": "x", "shape": shape or [1, 4], "datatype": datatype, "data": data}]}


BAD_JSON_REQUESTS: list[tuple[str, str, Any, int, str]] = [
    # (case, path, json body, status, part of the error message)
    ("v2 no inputs", V2, {"id": "1"}, 400, '"inputs" must be a non-empty list'),
    ("v2 inputs not a list", V2, {"inputs": {}}, 400, '"inputs" must be a non-empty list'),
    ("v2 body not an object", V2, [1, 2], 400, "must be a JSON object"),
    (
        "v2 string where a number goes",
        V2,
        tensor([5.1, "a", 1.4, 0.2]),
        400,
        "column 'sepal width (cm)': expected a number, got string 'a'",
    ),
    ("v2 null", V2, tensor([5.1, None, 1.4, 0.2]), 400, "expected a number, got null"),
    ("v2 boolean", V2, tensor([5.1, True, 1.4, 0.2]), 400, "expected a number, got boolean true"),
    (
        "v2 too few values for shape",
        V2,
        tensor([5.1, 3.5, 1.4]),
        400,
        "shape [1, 4] needs 4 values, got 3",
    ),
    (
        "v2 wrong feature count",
        V2,
        tensor([5.1, 3.5, 1.4], shape=[1, 3]),
        400,
        "rows have 3 values, the model expects 4",
    ),
    (
        "v2 shape not matching nested data",
        V2,
        tensor([ROW, ROW], shape=[3, 4]),
        400,
        "declared [3, 4]",
    ),
    (
        "v2 bad shape",
        V2,
        tensor(ROW, shape=[-1, 4]),
        400,
        "shape must be a list of non-negative integers",
    ),
    ("v2 bad datatype", V2, tensor(ROW, datatype="FLOAT"), 400, "datatype must be one of"),
    (
        "v2 BYTES for numbers",
        V2,
        tensor(ROW, datatype="BYTES"),
        400,
        "datatype is BYTES, but the model expects number values",
    ),
    ("v2 ragged rows", V2, tensor([ROW, ROW[:3]], shape=[2, 4]), 400, "ragged rows"),
    ("v2 empty tensor", V2, tensor([], shape=[0, 4]), 400, "is empty"),
    (
        "v2 no data",
        V2,
        {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64"}]},
        400,
        "has no data",
    ),
    (
        "v2 missing column tensor",
        V2,
        {
            "inputs": [
                {"name": c, "shape": [1], "datatype": "FP64", "data": [1.0]} for c in COLUMNS[:3]
            ]
        },
        400,
        "missing ['petal width (cm)']",
    ),
    (
        "v2 unknown column tensor",
        V2,
        {
            "inputs": [
                {"name": c, "shape": [1], "datatype": "FP64", "data": [1.0]}
                for c in [*COLUMNS, "age"]
            ]
        },
        400,
        "unknown ['age']",
    ),
    (
        "v2 column lengths differ",
        V2,
        {
            "inputs": [
                {
                    "name": c,
                    "shape": [1 + (c == COLUMNS[1])],
                    "datatype": "FP64",
                    "data": [1.0] * (1 + (c == COLUMNS[1])),
                }
                for c in COLUMNS
            ]
        },
        400,
        "column 'sepal width (cm)' has 2 values",
    ),
    ("v1 no instances", V1, {"rows": [ROW]}, 400, '"instances"'),
    ("v1 instances not a list", V1, {"instances": "x"}, 400, "instances must be a list of rows"),
    ("v1 empty instances", V1, {"instances": []}, 400, "instances is empty"),
    ("v1 flat instances", V1, {"instances": ROW}, 400, "must be a list of rows"),
    (
        "v1 wrong count",
        V1,
        {"instances": [[*ROW, 1.0]]},
        400,
        "rows have 5 values, the model expects 4",
    ),
    (
        "v1 record with missing column",
        V1,
        {"instances": [{k: v for k, v in RECORD.items() if k != COLUMNS[0]}]},
        400,
        "missing ['sepal length (cm)']",
    ),
    (
        "v1 record with extra column",
        V1,
        {"instances": [{**RECORD, "age": 3}]},
        400,
        "unknown ['age']",
    ),
    ("v1 nested too deep", V1, {"instances": [[ROW]]}, 400, "each a list of 4 values"),
    (
        "mlflow no format",
        MLFLOW,
        {"data": [ROW]},
        400,
        "exactly one of ['dataframe_split', 'dataframe_records', 'instances', 'inputs']",
    ),
    ("mlflow two formats", MLFLOW, {"inputs": [ROW], "instances": [ROW]}, 400, "exactly one of"),
    (
        "mlflow unknown field",
        MLFLOW,
        {"inputs": [ROW], "extra": 1},
        400,
        "unknown fields ['extra']",
    ),
    (
        "mlflow params",
        MLFLOW,
        {"inputs": [ROW], "params": {"k": 1}},
        400,
        '"params" are not supported',
    ),
    (
        "mlflow split wrong columns",
        MLFLOW,
        {"dataframe_split": {"columns": ["a", "b", "c", "d"], "data": [ROW]}},
        400,
        "wrong columns",
    ),
    (
        "mlflow split without data",
        MLFLOW,
        {"dataframe_split": {"columns": COLUMNS}},
        400,
        '"dataframe_split" must be an object with "data"',
    ),
    (
        "mlflow records not objects",
        MLFLOW,
        {"dataframe_records": [ROW]},
        400,
        "dataframe_records[0] must be an object",
    ),
    (
        "mlflow string in records",
        MLFLOW,
        {"dataframe_records": [{**RECORD, COLUMNS[2]: "1.4"}]},
        400,
        "column 'petal length (cm)': expected a number, got string '1.4'",
    ),
    (
        "wrong model name v2",
        "/v2/models/other/infer",
        tensor(ROW),
        404,
        "model 'other' not found; this server serves 'iris'",
    ),
    (
        "wrong model name v1",
        "/v1/models/other:predict",
        {"instances": [ROW]},
        404,
        "model 'other' not found",
    ),
    (
        "wrong model version",
        "/v2/models/iris/versions/7/infer",
        tensor(ROW),
        404,
        "version '7' of model 'iris' not found",
    ),
    (
        "path-like model name",
        "/v2/models/..%2F..%2Fetc%2Fpasswd/infer",
        tensor(ROW),
        404,
        "no route /v2/models/../../etc/passwd/infer",
    ),
    ("unknown route", "/v3/predict", tensor(ROW), 404, "no route /v3/predict"),
    ("load another model", "/v2/repository/models/other/load", {}, 404, "no route"),
]


@pytest.mark.parametrize(
    ("path", "body", "status", "message"),
    [case[1:] for case in BAD_JSON_REQUESTS],
    ids=[case[0] for case in BAD_JSON_REQUESTS],
)
def test_bad_request_is_refused_with_a_message(
    client: TestClient, path: str, body: Any, status: int, message: str
) -> None:
    response = client.post(path, json=body)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert message in response.json()["error"]
    # ...and the server keeps serving.
    assert client.post(V1, json={"instances": [ROW]}).json() == {"predictions": [0]}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "request body is empty"),
        (b"   ", "request body is empty"),
        (b"{not json", "not valid JSON"),
        (b"[1e400]", "not valid JSON"),
        (b"NaN", "not valid JSON"),
    ],
)
@pytest.mark.parametrize("path", [V2, V1, MLFLOW])
def test_empty_or_malformed_body(
    client: TestClient, path: str, content: bytes, message: str
) -> None:
    response = client.post(path, content=content, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_wrong_method_is_405_with_allow_header(client: TestClient) -> None:
    response = client.get(V2)
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert "GET not allowed" in response.json()["error"]
    assert client.delete("/v2/health/ready").status_code == 405


@pytest.fixture
def small_limit_client(iris_model: Model) -> Iterator[TestClient]:
    settings = ServerSettings(model_uri=iris_model.uri, max_body_bytes=1000)
    with TestClient(create_app(iris_model, settings)) as test_client:
        yield test_client


def test_body_over_the_limit_is_413_before_reading(small_limit_client: TestClient) -> None:
    def body() -> Iterator[bytes]:  # no content-length: sent chunked
        for _ in range(100):
            yield b" " * 100

    response = small_limit_client.post(V1, content=body())
    assert response.status_code == 413
    assert "exceeds the limit of 1000 bytes" in response.json()["error"]

    declared = small_limit_client.post(V1, content=b"x" * 1001)
    assert declared.status_code == 413
    assert declared.json() == {"error": "request body of 1001 bytes exceeds the limit of 1000"}

    fits = small_limit_client.post(V1, json={"instances": [ROW] * 10})
    assert fits.status_code == 200


def test_model_that_failed_to_load_answers_503(tmp_path: Any) -> None:
    errors: list[BaseException] = []
    broken = Model(str(tmp_path / "no-model"), name="iris")
    with TestClient(create_app(broken, on_load_error=errors.append)) as client:
        assert client.get("/v2/health/live").status_code == 200
        for _ in range(100):
            if errors:
                break
            client.get("/v2/health/live")
        assert errors and "no MLmodel file" in str(errors[0])
        assert client.get("/v2/health/ready").status_code == 503
        response = client.post(V1, json={"instances": [ROW]})
        assert response.status_code == 503
        assert response.json() == {"error": "model 'iris' failed to load"}
        assert "no MLmodel file" in client.get("/version").json()["load_error"]


def test_read_body_stops_reading_at_the_limit() -> None:
    received: list[int] = []

    async def receive() -> dict[str, Any]:
        received.append(1)
        return {"type": "http.request", "body": b"x" * 100, "more_body": True}

    chunked = {"headers": [(b"content-type", b"application/json")]}
    with pytest.raises(PayloadTooLarge):
        asyncio.run(read_body(chunked, receive, limit=1000))
    assert len(received) == 11  # 1100 bytes: one chunk past the limit, never the rest

    received.clear()
    declared = {"headers": [(b"content-length", b"5000000")]}
    with pytest.raises(PayloadTooLarge):
        asyncio.run(read_body(declared, receive, limit=1000))
    assert received == []  # refused from the header alone


MIXED_ROW = {"size": 0.5, "count": 3, "color": "red"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {"dataframe_records": [{**MIXED_ROW, "color": 1}]},
            "column 'color': expected a string, got 1",
        ),
        (
            {"dataframe_records": [{**MIXED_ROW, "size": "big"}]},
            "column 'size': expected a number, got string 'big'",
        ),
        (
            {"dataframe_records": [{**MIXED_ROW, "count": 1.5}]},
            "column 'count': expected an integer, got 1.5",
        ),
        (
            {"dataframe_records": [{**MIXED_ROW, "color": None}]},
            "column 'color': expected a string, got null",
        ),
        ({"inputs": [[0.5, 3]]}, "row 0 has 2 values, the model expects 3"),
    ],
)
def test_mixed_signature_types_are_checked(mixed_model: Model, body: Any, message: str) -> None:
    with TestClient(create_app(mixed_model)) as client:
        response = client.post(MLFLOW, json=body)
        assert response.status_code == 400
        assert message in response.json()["error"]
        tensor_body = {
            "inputs": [{"name": "x", "shape": [1, 3], "datatype": "BYTES", "data": [0.5, 3, "red"]}]
        }
        assert client.post("/v2/models/mixed/infer", json=tensor_body).status_code == 200
        column_body = {
            "inputs": [
                {"name": "size", "shape": [1], "datatype": "BYTES", "data": ["0.5"]},
                {"name": "count", "shape": [1], "datatype": "INT64", "data": [3]},
                {"name": "color", "shape": [1], "datatype": "BYTES", "data": ["red"]},
            ]
        }
        wrong_type = client.post("/v2/models/mixed/infer", json=column_body)
        assert wrong_type.status_code == 400
        assert "datatype is BYTES, but the model expects number values" in wrong_type.text
