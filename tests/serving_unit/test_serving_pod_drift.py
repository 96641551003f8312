"""Several workers in one Pod: each publishes its drift counts to a shared directory, and
any of them answers /drift (and the drift gauges) with the counts of all, leaving out a
worker that stopped publishing."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
from starlette.testclient import TestClient

from mlcycle_contract.drift import DriftWindow
from mlcycle_serving.app import create_app
from mlcycle_serving.drift import DriftMonitor, DriftSettings
from mlcycle_serving.model import Model
from mlcycle_serving.pod_drift import STALE_SECONDS, PodDrift
from mlcycle_serving.settings import ServerSettings
from tests.serving_unit.test_serving_drift import (
    COLOURS,
    ON,
    REFERENCE,
    SIZES,
    Clock,
    _batch,
    _iris_reference,
    iris_with_reference,
)

COLUMNS = ("size", "colour")


def _worker(directory: Path, index: int, rows: slice, clock: Clock) -> PodDrift:
    monitor = DriftMonitor(REFERENCE, COLUMNS, ON, version="3", clock=clock)
    monitor.observe(_batch(SIZES[rows].tolist(), COLOURS[rows]))
    return PodDrift(monitor, directory, index)


def test_any_worker_answers_the_counts_of_all_workers(tmp_path: Path) -> None:
    clock = Clock()
    first = _worker(tmp_path, 0, slice(0, 30), clock)
    second = _worker(tmp_path, 1, slice(30, 70), clock)
    alone = DriftMonitor(REFERENCE, COLUMNS, ON, version="3")
    alone.observe(_batch(SIZES[:70].tolist(), COLOURS[:70]))
    assert first.window().counts.rows == 30  # the second has not published yet
    first.publish()
    second.publish()
    clock.now = 4.0
    for worker in (first, second):
        window = worker.window()
        assert window.counts == alone.counts()  # the sum, as one server seeing every row
        assert window.scores == alone.scores()
        assert window.oldest_seconds is not None and window.oldest_seconds >= 4.0

    first.monitor.observe(_batch(SIZES[70:75].tolist(), COLOURS[70:75]))
    assert first.window().counts.rows == 75  # its own rows live
    assert second.window().counts.rows == 70  # its sibling's as last published


def test_a_stale_file_or_another_version_is_left_out(tmp_path: Path) -> None:
    clock = Clock()
    first = _worker(tmp_path, 0, slice(0, 30), clock)
    second = _worker(tmp_path, 1, slice(30, 70), clock)
    second.publish()
    assert first.window().counts.rows == 70
    gone = time.time() - STALE_SECONDS - 1
    os.utime(second.path, (gone, gone))  # its worker stopped publishing
    assert first.window().counts.rows == 30

    other = DriftMonitor(REFERENCE, COLUMNS, ON, version="4", clock=clock)
    other.observe(_batch(SIZES[:10].tolist(), COLOURS[:10]))
    PodDrift(other, tmp_path, 2).publish()
    assert first.window().counts.rows == 30
    # Only the published files: none written aside is left behind.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["worker-1.json", "worker-2.json"]


def test_drift_and_gauges_of_a_worker_are_the_pods(
    tmp_path: Path, iris_model_dir: Path, iris: tuple[pd.DataFrame, pd.Series]
) -> None:
    features, _ = iris
    model_dir = iris_with_reference(tmp_path, iris_model_dir, features)
    reference = _iris_reference(features)
    model = Model(str(model_dir), name="iris")
    model.load()
    shared = tmp_path / "drift"
    shared.mkdir()
    sibling = DriftMonitor(reference, tuple(features.columns), DriftSettings(enabled=True))
    sibling.observe(np.asarray(features.to_numpy()[:40]))
    PodDrift(sibling, shared, 1).publish()

    app = create_app(model, ServerSettings(model_uri=model.uri, drift=DriftSettings(enabled=True)))
    assert app.drift is not None
    app.pod_drift = PodDrift(app.drift, shared, 0)
    with TestClient(app) as http:
        rows = features.to_numpy()[:25].tolist()
        assert http.post("/invocations", json={"inputs": rows}).status_code == 200
        window = DriftWindow.model_validate(http.get("/drift").json())
        metrics = http.get("/metrics").text
    assert window.counts.rows == 65
    assert sum(window.counts.features["petal width (cm)"].counts) == 65
    assert "mlcycle_serving_drift_window_rows 65.0" in metrics
