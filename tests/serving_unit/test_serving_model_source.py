"""Model URIs, aliases resolved once to a version, and the recorded runtime."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from starlette.testclient import TestClient

from mlcycle_serving.app import create_app
from mlcycle_serving.model import Model, model_name_from_uri
from mlcycle_serving.model_source import (
    ModelReference,
    ModelSourceError,
    RuntimeVersions,
    download_model,
    read_requirements,
    resolve_model_uri,
)


@pytest.mark.parametrize(
    ("uri", "name"),
    [
        ("models:/iris/3", "iris"),
        ("models:/iris@champion", "iris"),
        ("models:/iris/latest", "iris"),
        ("models:/m-0123456789abcdef", "model"),
        ("runs:/abc/model", "model"),
        ("/models/iris", "model"),
    ],
)
def test_model_name_from_uri(uri: str, name: str) -> None:
    assert model_name_from_uri(uri) == name


def test_a_local_directory_resolves_to_itself() -> None:
    assert resolve_model_uri("/models/iris") == ModelReference(
        uri="/models/iris", resolved_uri="/models/iris"
    )


@pytest.mark.parametrize(
    "uri",
    [
        "models:/a/b/c",
        "models:/iris/Production",
        "models:/m-0123456789abcdef",
        "runs:/0a1b2c/model",
        "s3://bucket/model",
    ],
)
def test_unsupported_model_uris(uri: str) -> None:
    with pytest.raises(ModelSourceError):
        resolve_model_uri(uri)


def test_local_directory_without_mlmodel(tmp_path: Path) -> None:
    with pytest.raises(ModelSourceError, match="no MLmodel file"):
        download_model(ModelReference(uri=str(tmp_path), resolved_uri=str(tmp_path)))


def test_requirements_and_mismatches(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text(
        "mlflow==3.17.2\nscikit-learn==1.5.0 ; python_version > '3'\nnumpy>=2\n# comment\n"
    )
    assert read_requirements(tmp_path) == {"mlflow": "3.17.2", "scikit-learn": "1.5.0"}
    runtime = RuntimeVersions(
        recorded={"python": "3.11.7", "sklearn": "1.5.0", "image": "x"},
        serving={"python": "3.11.7", "sklearn": "1.9.1"},
        requirements={},
    )
    assert runtime.mismatches == ["sklearn"]


def test_alias_is_resolved_once_to_a_registered_version(
    tmp_path: Path,
    mlflow_server: str,
    monkeypatch: pytest.MonkeyPatch,
    iris: tuple[pd.DataFrame, pd.Series],
) -> None:
    """A real MLflow server (SQLite, proxied artifacts): log, register twice, alias, serve
    by alias; the server reads the registry and the artifacts over MLflow's REST API."""
    import mlflow
    import mlflow.sklearn
    from mlflow import MlflowClient
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    mlflow.set_tracking_uri(mlflow_server)
    experiment = mlflow.create_experiment("serving")
    features, target = iris
    estimator = LogisticRegression(max_iter=500).fit(features, target)
    for _ in range(2):
        with mlflow.start_run(experiment_id=experiment):
            mlflow.set_tags({"runtime.python": "3.11.7", "runtime.image": "trainer:1"})
            mlflow.log_params({"runtime.sklearn": "1.0.0", "runtime.numpy": "2.0.0"})
            mlflow.set_tag("runtime.sklearn", "9.9.9")  # a tag wins over a param
            mlflow.sklearn.log_model(
                estimator,
                name="model",
                signature=infer_signature(features, estimator.predict(features)),
                registered_model_name="iris",
                pip_requirements=["scikit-learn"],
            )
    client = MlflowClient()
    client.set_registered_model_alias("iris", "champion", "1")
    client.set_model_version_tag("iris", "1", "runtime.numpy", "2.4.0")

    model = Model("models:/iris@champion", download_dir=str(tmp_path / "download"))
    assert model.name == "iris"
    model.load()
    client.set_registered_model_alias("iris", "champion", "2")  # moves after start-up
    assert model.version == "1"
    assert model.reference.resolved_uri == "models:/iris/1"
    assert model.reference.alias == "champion"
    assert model.describe()["run_id"] == client.get_model_version("iris", "1").run_id
    recorded = model.runtime.recorded
    assert recorded["python"] == "3.11.7"
    assert recorded["image"] == "trainer:1"
    assert recorded["sklearn"] == "9.9.9"  # run tag over run param over MLmodel
    assert recorded["numpy"] == "2.4.0"  # model version tag over the run
    assert "sklearn" in model.runtime.mismatches
    assert (tmp_path / "download" / "MLmodel").is_file()
    assert model.predict(features.iloc[:3].to_numpy()).tolist() == [0, 0, 0]
    body = {
        "inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]
    }
    with TestClient(create_app(model)) as http:
        assert http.get("/v2/models/iris").json()["versions"] == ["1"]
        assert 'name="iris",version="1"' in http.get("/metrics").text
        served = http.post("/v2/models/iris/versions/1/infer", json=body).json()
        assert served["model_version"] == "1"
        assert served["outputs"][0]["data"] == [0]
        assert http.post("/v2/models/iris/versions/2/infer", json=body).status_code == 404
        assert http.get("/version").json()["model"]["resolved_uri"] == "models:/iris/1"

    latest = Model("models:/iris/latest")
    latest.load()
    assert latest.version == "2"
    with pytest.raises(ModelSourceError, match="cannot resolve"):
        Model("models:/iris@nobody").load()


def test_a_registered_pyfunc_is_refused_before_anything_but_its_mlmodel_is_read(
    tmp_path: Path, mlflow_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over REST, as in a Pod: the files listed, MLmodel judged, no skops file asked for."""
    import mlflow
    import mlflow.pyfunc

    from mlcycle_serving.skops_loading import UnsafeModel

    class Echo(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
            return model_input

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    mlflow.set_tracking_uri(mlflow_server)
    mlflow.set_experiment("pyfunc")
    with mlflow.start_run():
        mlflow.pyfunc.log_model(
            name="model",
            python_model=Echo(),
            registered_model_name="echo",
            pip_requirements=["pandas"],
        )
    download = tmp_path / "download"
    with pytest.raises(UnsafeModel, match=r"a pyfunc loaded by mlflow\.pyfunc\.model"):
        Model("models:/echo/1", download_dir=str(download)).load()
    assert sorted(p.name for p in download.iterdir()) == ["MLmodel", "requirements.txt"]
