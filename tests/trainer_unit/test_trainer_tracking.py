"""The trainer's model logging over a real MLflow server: the version is registered with its
tags, and the run's results land in one batch, linked to the logged model, without MLflow
reading every metric back (which it does for metrics logged before the model)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.utils import rest_utils
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from mlcycle_trainer import tracking
from mlcycle_trainer.errors import Transient

RESULTS = tracking.RunResults(
    metrics={"accuracy": 0.97, "cv_accuracy_mean": 0.95, "fit_seconds": 0.01},
    params={"validation.folds_used": 5},
    tags={"mlcycle.gates.passed": "true"},
)
VERSION_TAGS = {"mlcycle.dataset.version": "abc123", "mlcycle.drift.reference": "x.json"}


@pytest.fixture
def tracking_server(mlflow_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    mlflow.set_tracking_uri(mlflow_server)
    mlflow.set_experiment("trainer-tracking")
    yield mlflow_server
    mlflow.set_tracking_uri(None)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def iris_pipeline() -> tuple[Pipeline, pd.DataFrame]:
    features, target = load_iris(return_X_y=True, as_frame=True)
    return Pipeline([("model", LogisticRegression(max_iter=500))]).fit(features, target), features


def count_requests(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tracking server's endpoints, as the trainer calls them."""
    calls: list[str] = []
    real = rest_utils.http_request

    def counted(host_creds: Any, endpoint: str, method: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(f"{method} {endpoint}")
        return real(host_creds, endpoint, method, *args, **kwargs)

    monkeypatch.setattr(rest_utils, "http_request", counted)
    return calls


def test_the_version_has_its_tags_and_the_run_its_results_linked_to_the_model(
    tracking_server: str, iris_pipeline: tuple[Pipeline, pd.DataFrame],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pipeline, features = iris_pipeline
    with mlflow.start_run() as run:
        calls = count_requests(monkeypatch)
        model = tracking.log_and_register_model(
            pipeline, features, [], "iris-tracking", VERSION_TAGS, run.info.run_id, RESULTS)
        made = list(calls)
    client = MlflowClient()
    version = client.get_model_version(model.name, str(model.version))
    assert VERSION_TAGS.items() <= version.tags.items()
    finished = client.get_run(run.info.run_id)
    assert finished.data.metrics == RESULTS.metrics
    assert finished.data.params["validation.folds_used"] == "5"
    assert finished.data.tags["mlcycle.gates.passed"] == "true"
    for key in RESULTS.metrics:
        history = client.get_metric_history(run.info.run_id, key)
        assert [m.model_id for m in history] == [version.model_id]  # logged once, linked
    assert not any("metrics/get-history" in call for call in made)
    assert not any("model-versions/set-tag" in call for call in made)
    assert sum("runs/log-batch" in call for call in made) == 1, made


def test_a_model_that_fails_to_log_leaves_the_results_in_the_run(
    tracking_server: str, iris_pipeline: tuple[Pipeline, pd.DataFrame],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def unavailable(*_: Any, **__: Any) -> None:
        raise MlflowException("the artifact store is down")

    monkeypatch.setattr(mlflow.sklearn, "log_model", unavailable)
    pipeline, features = iris_pipeline
    with mlflow.start_run() as run, pytest.raises(Transient, match="artifact store is down"):
        tracking.log_and_register_model(
            pipeline, features, [], "iris-tracking", VERSION_TAGS, run.info.run_id, RESULTS)
    logged = MlflowClient().get_run(run.info.run_id).data
    assert logged.metrics == RESULTS.metrics
    assert logged.params["validation.folds_used"] == "5"


def image_environment() -> dict[str, str]:
    """The ENV the trainer image's Dockerfile sets (one `NAME=value` a line)."""
    text = (Path(__file__).parents[2] / "trainer_image" / "Dockerfile").read_text()
    block = text.split("\nENV ", 1)[1].split("\nWORKDIR", 1)[0]
    pairs = (line.strip(" \\").partition("=") for line in block.splitlines())
    return {name: value for name, _, value in pairs}


def test_ending_a_run_in_the_image_makes_one_request(
    tracking_server: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in image_environment().items():
        if name.startswith("MLFLOW_"):
            monkeypatch.setenv(name, value)
    experiment_id = mlflow.get_experiment_by_name("trainer-tracking").experiment_id  # type: ignore[union-attr]
    with tracking.training_run(experiment_id, "ending", {}) as run_id:
        calls = count_requests(monkeypatch)
    assert calls == ["POST /api/2.0/mlflow/runs/update"]  # not a read of the run to print its URL
    assert MlflowClient().get_run(run_id).info.status == "FINISHED"
