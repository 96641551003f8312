"""Liveness at once, readiness after load; metadata, versions and Prometheus metrics."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from mlcycle_serving.app import ServingApp, create_app
from mlcycle_serving.model import Model
from mlcycle_serving.settings import ServerSettings

ROW = [5.1, 3.5, 1.4, 0.2]


class GatedModel(Model):
    """Loads only once the test opens the gate."""

    def __init__(self, uri: str) -> None:
        super().__init__(uri, name="iris")
        self.gate = threading.Event()

    def load(self) -> None:
        assert self.gate.wait(timeout=60)
        super().load()


def test_live_at_once_ready_after_background_load(iris_model_dir: Path) -> None:
    model = GatedModel(str(iris_model_dir))
    with TestClient(create_app(model)) as client:
        assert client.get("/v2/health/live").json() == {"live": True}
        assert client.get("/v2/health/ready").status_code == 503
        assert client.get("/v2/models/iris/ready").json() == {"name": "iris", "ready": False}
        assert client.get("/ping").status_code == 503
        not_ready = client.post("/invocations", json={"inputs": [ROW]})
        assert not_ready.status_code == 503
        assert not_ready.json() == {"error": "model 'iris' is loading"}
        assert "mlcycle_serving_model_ready 0.0" in client.get("/metrics").text
        model.gate.set()
        deadline = time.monotonic() + 60
        while client.get("/v2/health/ready").status_code == 503:
            assert time.monotonic() < deadline, "model did not load"
            time.sleep(0.01)
        assert client.get("/v2/health/ready").json() == {"ready": True, "draining": False}
        assert client.get("/ping").json() == {"status": "ready"}
        assert client.get("/health").status_code == 200
        assert client.post("/invocations", json={"inputs": [ROW]}).json() == {"predictions": [0]}
        assert "mlcycle_serving_model_ready 1.0" in client.get("/metrics").text


def test_metadata_endpoints(client: TestClient) -> None:
    assert client.get("/").json() == {"status": "alive"}
    assert client.get("/v2").json()["name"] == "mlcycle-serving"
    assert client.get("/v1/models").json() == {"models": ["iris"]}
    assert client.get("/v1/models/iris").json() == {"name": "iris", "ready": True}
    assert client.get("/v1/models/other").status_code == 404
    metadata = client.get("/v2/models/iris").json()
    assert metadata["name"] == "iris"
    assert metadata["platform"] == "mlflow_sklearn"
    assert metadata["inputs"][0] == {"name": "sepal length (cm)", "datatype": "FP64", "shape": [-1]}
    assert len(metadata["inputs"]) == 4
    assert metadata["outputs"] == [{"name": "predict", "datatype": "INT64", "shape": [-1]}]
    runtime = metadata["parameters"]["runtime"]
    assert runtime["recorded"]["sklearn"] == runtime["serving"]["sklearn"]
    assert runtime["mismatches"] == []
    assert client.get("/v2/models/iris/ready").json() == {"name": "iris", "ready": True}


def test_tensor_signature_metadata(iris_tensor_model: Model) -> None:
    with TestClient(create_app(iris_tensor_model)) as client:
        metadata = client.get("/v2/models/iris-tensor").json()
    assert metadata["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}]


def test_version_reports_model_and_runtimes(client: TestClient, iris_model_dir: Path) -> None:
    version = client.get("/version").json()
    assert version["model"]["name"] == "iris"
    assert version["model"]["uri"] == str(iris_model_dir)
    assert version["model"]["flavor"] == "sklearn"
    assert version["model"]["ready"] is True
    recorded = version["runtime"]["recorded"]
    assert {"python", "sklearn", "numpy", "mlflow"} <= recorded.keys()
    assert version["runtime"]["requirements"]["scikit-learn"] == recorded["sklearn"]
    assert version["load_error"] is None


def test_metrics(client: TestClient) -> None:
    client.post("/v1/models/iris:predict", json={"instances": [ROW, ROW]})
    client.post("/v1/models/iris:predict", json={"instances": [["x", 1, 2, 3]]})
    client.get("/nowhere")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    predict_route = 'route="/v1/models/{name}:predict"'
    for line in [
        f'mlcycle_serving_requests_total{{code="200",method="POST",{predict_route}}} 1.0',
        f'mlcycle_serving_requests_total{{code="400",method="POST",{predict_route}}} 1.0',
        'mlcycle_serving_requests_total{code="404",method="GET",route="unmatched"} 1.0',
        'mlcycle_serving_model_info{flavor="sklearn",name="iris",version=""} 1.0',
        "mlcycle_serving_rows_predicted_total 2.0",
        "mlcycle_serving_batch_rows_count 1.0",
        'mlcycle_serving_batch_rows_bucket{le="2.0"} 1.0',
        'mlcycle_serving_request_duration_seconds_count{route="/v1/models/{name}:predict"} 2.0',
        "mlcycle_serving_predict_duration_seconds_count 1.0",
    ]:
        assert line in text, line


def test_access_log_is_off_by_default_and_one_line_when_on(
    iris_model: Model, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="mlcycle_serving.access"):
        with TestClient(create_app(iris_model)) as client:
            client.get("/v2/health/live")
        assert not [r for r in caplog.records if r.name == "mlcycle_serving.access"]
        settings = ServerSettings(model_uri=iris_model.uri, access_log=True)
        with TestClient(create_app(iris_model, settings)) as client:
            client.post("/v1/models/iris:predict", json={"instances": [ROW]})
    (record,) = [r for r in caplog.records if r.name == "mlcycle_serving.access"]
    assert record.getMessage() == "POST /v1/models/iris:predict 200"
    assert record.duration_ms > 0


def test_draining_fails_readiness_but_keeps_predicting(client: TestClient) -> None:
    """After SIGTERM the pod leaves the endpoints while requests in flight still succeed."""
    app = client.app
    assert isinstance(app, ServingApp)
    app.draining = True
    assert client.get("/v2/health/ready").status_code == 503
    response = client.post("/v1/models/iris:predict", json={"instances": [[5.1, 3.5, 1.4, 0.2]]})
    assert response.status_code == 200
