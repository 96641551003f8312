"""Drift monitoring in the server: counts in the reference's bins, a bounded window, /drift,
the Prometheus gauges, and a version without a reference served unmonitored."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

from mlcycle_contract.drift import (
    REFERENCE_ARTIFACT,
    TAG_DRIFT_REFERENCE,
    DriftReference,
    DriftWindow,
    categorical_reference,
    numeric_counts,
    numeric_reference,
)
from mlcycle_serving.app import create_app
from mlcycle_serving.drift import SLOTS, DriftMonitor, DriftSettings, NoReference
from mlcycle_serving.model import Model
from mlcycle_serving.settings import ServerSettings, SettingsError

rng = np.random.default_rng(5)
SIZES = rng.normal(10, 3, size=2000)
COLOURS = list(rng.choice(["red", "green", "blue"], size=2000, p=[0.6, 0.3, 0.1]))
REFERENCE = DriftReference(
    rows=2000,
    features=[numeric_reference("size", SIZES), categorical_reference("colour", COLOURS)],
)
ON = DriftSettings(enabled=True, window_rows=100, window_seconds=60)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _batch(sizes: list[float], colours: list[object]) -> np.ndarray:
    batch = np.empty((len(sizes), 2), dtype=object)
    batch[:, 0] = sizes
    batch[:, 1] = colours
    return batch


def test_counts_are_the_reference_bins_of_every_value() -> None:
    monitor = DriftMonitor(REFERENCE, ("size", "colour"), ON)
    sizes = [*SIZES[:30].tolist(), float("nan"), -100.0, 100.0]
    colours = [*COLOURS[:30], None, "purple", float("nan")]
    monitor.observe(_batch(sizes, colours))
    counts = monitor.counts()
    assert counts.rows == 33
    size = counts.features["size"]
    expected = numeric_counts([v for v in sizes if v == v], REFERENCE.features[0].edges)
    assert size.counts == expected and size.missing == 1
    colour = counts.features["colour"]
    categories = REFERENCE.features[1].categories
    assert colour.counts == [*(COLOURS[:30].count(c) for c in categories), 1]
    assert colour.missing == 2


def test_numeric_only_batches_are_counted_from_float_arrays() -> None:
    reference = DriftReference(rows=2000, features=[numeric_reference("size", SIZES)])
    monitor = DriftMonitor(reference, ("other", "size"), ON)
    batch = np.column_stack([np.zeros(50), SIZES[:50]])
    monitor.observe(batch)
    assert monitor.counts().features["size"].counts == numeric_counts(
        SIZES[:50], reference.features[0].edges
    )


def test_window_keeps_the_newest_rows_in_constant_memory() -> None:
    clock = Clock()
    monitor = DriftMonitor(REFERENCE, ("size", "colour"), ON, clock=clock)
    shape = monitor._counts.shape
    monitor.observe(_batch([SIZES[0]], [COLOURS[0]]))
    assert monitor.counts().rows == 1  # rows waiting to be counted are counted when read
    for i in range(1000):
        monitor.observe(_batch([SIZES[i]], [COLOURS[i]]))
    assert monitor._counts.shape == shape == (SLOTS, monitor._width)
    rows = monitor.counts().rows
    assert 90 <= rows <= 100  # the last sub-window may be part full
    clock.now = 30.0  # half the window's age: half the sub-windows dropped
    assert monitor.counts().rows <= 50
    clock.now = 61.0
    assert monitor.counts().rows == 0


def test_window_says_the_age_of_its_oldest_rows() -> None:
    clock = Clock()
    monitor = DriftMonitor(REFERENCE, ("size", "colour"), ON, clock=clock)
    assert monitor.window().oldest_seconds is None  # nothing counted yet
    monitor.observe(_batch([SIZES[0]], [COLOURS[0]]))
    clock.now = 5.0
    assert monitor.window().oldest_seconds == 5.0
    clock.now = 20.0  # two sub-windows later: the row still counts, 20 s old at most
    monitor.observe(_batch([SIZES[1]], [COLOURS[1]]))
    assert monitor.window().oldest_seconds == 20.0
    clock.now = 200.0  # both rows left the window
    assert monitor.window().oldest_seconds is None


def test_scores_detect_a_shift_only_over_enough_rows() -> None:
    settings = DriftSettings(enabled=True, window_rows=500, min_rows=200)
    monitor = DriftMonitor(REFERENCE, ("size", "colour"), settings)
    shifted = (rng.normal(10, 3, size=150) + 3).tolist()
    monitor.observe(_batch(shifted, COLOURS[:150]))
    assert not monitor.scores().detected  # 150 rows: too few
    monitor.observe(_batch((rng.normal(10, 3, size=100) + 3).tolist(), COLOURS[150:250]))
    scores = monitor.scores()
    assert scores.detected and scores.rows == 250
    assert [f.drifted for f in scores.features] == [True, False]


def test_a_reference_feature_the_model_does_not_take_is_refused() -> None:
    with pytest.raises(NoReference, match="colour"):
        DriftMonitor(REFERENCE, ("size",), ON)


def test_settings_read_the_drift_variables() -> None:
    settings = ServerSettings.from_env(
        {
            "MLCYCLE_MODEL_URI": "models:/m/1",
            "MLCYCLE_DRIFT": "true",
            "MLCYCLE_DRIFT_WINDOW_ROWS": "1000",
            "MLCYCLE_DRIFT_PSI": "0.3",
            "MLCYCLE_DRIFT_JENSEN_SHANNON": "0.25",
            "MLCYCLE_DRIFT_MISSING_SHIFT": "0.05",
            "MLCYCLE_DRIFT_UNSEEN_SHARE": "0.5",
        }
    )
    assert settings.drift == DriftSettings(
        enabled=True,
        window_rows=1000,
        psi=0.3,
        jensen_shannon=0.25,
        missing_shift=0.05,
        unseen_share=0.5,
    )
    thresholds = settings.drift.thresholds
    assert (thresholds.jensen_shannon, thresholds.missing_shift, thresholds.unseen_share) == (
        0.25,
        0.05,
        0.5,
    )
    assert ServerSettings.from_env({"MLCYCLE_MODEL_URI": "m"}).drift.enabled is False
    with pytest.raises(SettingsError, match="MLCYCLE_DRIFT_PSI"):
        ServerSettings.from_env({"MLCYCLE_MODEL_URI": "m", "MLCYCLE_DRIFT_PSI": "0"})
    with pytest.raises(SettingsError, match="MLCYCLE_DRIFT_WINDOW_ROWS"):
        ServerSettings.from_env({"MLCYCLE_MODEL_URI": "m", "MLCYCLE_DRIFT_WINDOW_ROWS": "3"})


@pytest.mark.parametrize(
    "variable",
    ["MLCYCLE_DRIFT_JENSEN_SHANNON", "MLCYCLE_DRIFT_MISSING_SHIFT", "MLCYCLE_DRIFT_UNSEEN_SHARE"],
)
@pytest.mark.parametrize("value", ["0", "1.5", "-0.1"])
def test_share_thresholds_outside_0_to_1_are_refused(variable: str, value: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        ServerSettings.from_env({"MLCYCLE_MODEL_URI": "m", variable: value})


def test_the_server_scores_with_the_categorical_thresholds() -> None:
    """An unseen category in 30% of rows drifts at the default rise of 0.1, not at 0.5."""
    colours = ["purple"] * 60 + COLOURS[:140]
    scores = {}
    for unseen_share in (0.1, 0.5):
        settings = DriftSettings(
            enabled=True, window_rows=500, min_rows=100, jensen_shannon=1, unseen_share=unseen_share
        )
        monitor = DriftMonitor(REFERENCE, ("size", "colour"), settings)
        monitor.observe(_batch(SIZES[:200].tolist(), colours))
        scores[unseen_share] = monitor.scores().features[1].drifted
    assert scores == {0.1: True, 0.5: False}


def _iris_reference(features: pd.DataFrame) -> DriftReference:
    return DriftReference(
        rows=len(features),
        features=[numeric_reference(str(c), features[c].to_numpy()) for c in features.columns],
    )


def iris_with_reference(tmp_path: Path, iris_model_dir: Path, features: pd.DataFrame) -> Path:
    """A copy of the iris model with a drift reference of its training features."""
    model_dir = tmp_path / "iris"
    shutil.copytree(iris_model_dir, model_dir)
    (model_dir / REFERENCE_ARTIFACT).parent.mkdir()
    (model_dir / REFERENCE_ARTIFACT).write_text(_iris_reference(features).model_dump_json())
    return model_dir


def test_server_counts_predictions_and_answers_drift_and_gauges(
    tmp_path: Path, iris_model_dir: Path, iris: tuple[pd.DataFrame, pd.Series]
) -> None:
    features, _ = iris
    model_dir = iris_with_reference(tmp_path, iris_model_dir, features)
    model = Model(str(model_dir), name="iris")
    model.load()
    settings = ServerSettings(model_uri=model.uri, drift=DriftSettings(enabled=True))
    rows = features.to_numpy()
    with TestClient(create_app(model, settings)) as http:
        for row in rows[:20]:
            answer = http.post("/invocations", json={"inputs": [row.tolist()]})
            assert answer.status_code == 200
        shifted = (rows[:30] + features.std().to_numpy()).tolist()
        assert http.post("/invocations", json={"inputs": shifted}).status_code == 200
        window = DriftWindow.model_validate(http.get("/drift").json())
        metrics = http.get("/metrics").text
    assert window.counts.rows == 50 and window.window_rows == 500
    assert sum(window.counts.features["sepal length (cm)"].counts) == 50
    assert not window.scores.detected  # 50 rows < min_rows
    assert "mlcycle_serving_drift_monitoring 1.0" in metrics
    assert 'mlcycle_serving_drift_score{feature="petal width (cm)",kind="numeric"}' in metrics
    assert "mlcycle_serving_drift_window_rows 50.0" in metrics


def test_a_version_without_reference_is_served_unmonitored(iris_model: Model) -> None:
    settings = ServerSettings(model_uri=iris_model.uri, drift=DriftSettings(enabled=True))
    app = create_app(iris_model, settings)
    with TestClient(app) as http:
        answer = http.post("/invocations", json={"inputs": [[5.1, 3.5, 1.4, 0.2]]})
        assert answer.status_code == 200
        refused = http.get("/drift")
        assert refused.status_code == 409
        assert refused.json()["error"].startswith("NoReference:")
        assert "mlcycle_serving_drift_monitoring 0.0" in http.get("/metrics").text
    with TestClient(create_app(iris_model)) as http:
        assert "drift monitoring is off" in http.get("/drift").json()["error"]


def test_registered_version_reference_comes_from_its_training_run(
    tmp_path: Path,
    mlflow_server: str,
    monkeypatch: pytest.MonkeyPatch,
    iris: tuple[pd.DataFrame, pd.Series],
) -> None:
    """The trainer's own logging over a real MLflow server, read back by the server."""
    import mlflow
    from mlflow import MlflowClient
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from mlcycle_trainer import tracking
    from mlcycle_trainer.drift_reference import build_reference

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    mlflow.set_tracking_uri(mlflow_server)
    mlflow.set_experiment("drift")
    features, target = iris
    pipeline = LogisticRegression(max_iter=500).fit(features, target)
    for version_tags in ({}, {TAG_DRIFT_REFERENCE: REFERENCE_ARTIFACT}):  # version 2 only
        with mlflow.start_run() as run:
            tracking.log_drift_reference(build_reference(features))
            tracking.log_and_register_model(
                Pipeline([("model", pipeline)]), features, [], "iris-drift", version_tags,
                run.info.run_id, tracking.RunResults(metrics={"accuracy": 1.0}),
            )
    client = MlflowClient()
    assert client.get_model_version("iris-drift", "2").tags[TAG_DRIFT_REFERENCE]

    settings = DriftSettings(enabled=True)
    served = Model("models:/iris-drift/2", download_dir=str(tmp_path / "two"))
    served.load()
    with TestClient(create_app(served, ServerSettings(served.uri, drift=settings))) as http:
        http.post("/invocations", json={"inputs": features.to_numpy()[:5].tolist()})
        window = DriftWindow.model_validate(http.get("/drift").json())
    assert window.version == "2" and window.counts.rows == 5
    assert window.reference == build_reference(features)

    old = Model("models:/iris-drift/1", download_dir=str(tmp_path / "one"))
    old.load()
    with TestClient(create_app(old, ServerSettings(old.uri, drift=settings))) as http:
        assert http.post("/invocations", json={"inputs": [[5.1, 3.5, 1.4, 0.2]]}).status_code == 200
        error = http.get("/drift").json()["error"]
    assert error.startswith("NoReference:") and "trained before references" in error
