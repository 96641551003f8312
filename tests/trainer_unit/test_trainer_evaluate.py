"""Metrics carry the names the operator's gates and status use."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from mlcycle_contract.api.dataset import SplitSpec
from mlcycle_contract.api.evaluation import ValidationSpec
from mlcycle_contract.api.learning import (
    DEFAULT_METRIC,
    Algorithm,
    GateMetric,
    Metric,
    Task,
    metric_task,
)
from mlcycle_contract.api.trainingjob import Scaling
from mlcycle_trainer import evaluate
from mlcycle_trainer.algorithms import build_estimator, lookup
from mlcycle_trainer.evaluate import cross_validation, generalization_gap, timed_calls
from mlcycle_trainer.preprocessing import build_pipeline, features_and_target
from mlcycle_trainer.validation import Holdout, measure, split


def frame_for(task: Task, rows: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    x1 = rng.normal(size=rows)
    frame = pd.DataFrame(
        {"x1": x1, "x2": rng.normal(size=rows), "kind": rng.choice(["a", "b"], rows)}
    )
    if task == Task.CLASSIFICATION:
        frame["y"] = np.where(x1 > 0.5, 2, np.where(x1 > -0.5, 1, 0))
    else:
        frame["y"] = 3 * x1 + rng.normal(scale=0.1, size=rows)
    return frame


@pytest.mark.parametrize(
    ("task", "algorithm"),
    [(Task.CLASSIFICATION, "logistic_regression"), (Task.REGRESSION, "ridge")],
)
def test_measured_metrics_cover_every_gate_metric_of_the_task(task: Task, algorithm: str) -> None:
    x, y = features_and_target(frame_for(task), "y", task)
    holdout = Holdout.resolve(SplitSpec(test_fraction=0.25), ValidationSpec(), task)
    x_train, x_holdout, y_train, y_holdout = split(x, y, holdout)
    estimator = build_estimator(lookup(Algorithm(algorithm)), {}, 0)
    pipeline = build_pipeline(estimator, x_train, Scaling.STANDARD, True).fit(x_train, y_train)
    metrics, folds = measure(
        pipeline,
        ValidationSpec(folds=3),
        task,
        DEFAULT_METRIC[task],
        (x_train, y_train),
        (x_holdout, y_holdout),
    )
    assert folds == 3
    measured_later = {"fit_seconds", "model_size_bytes"}  # measured by train itself
    task_metrics = {m.value for m in Metric if metric_task(m) == Task(task)}
    gate_metrics = {m.value for m in GateMetric if m.value not in {x.value for x in Metric}}
    assert task_metrics | gate_metrics <= set(metrics) | measured_later
    for metric in task_metrics:
        assert f"cv_{metric}_mean" in metrics and f"cv_{metric}_std" in metrics
        assert f"train_{metric}" in metrics
    assert metrics["latency_p50_ms"] <= metrics["latency_p99_ms"]
    assert metrics["throughput_rows_per_second"] > 0


def test_the_gap_is_positive_when_the_holdout_is_worse() -> None:
    gap = generalization_gap({"accuracy": 1.0}, {"accuracy": 0.9}, Metric.ACCURACY)
    assert gap == pytest.approx(0.1)
    assert generalization_gap({"rmse": 1.0}, {"rmse": 1.5}, Metric.RMSE) == pytest.approx(0.5)
    assert generalization_gap({}, {"roc_auc": 0.9}, Metric.ROC_AUC) is None


def test_cross_validation_uses_fewer_folds_when_a_class_is_small() -> None:
    x, y = features_and_target(frame_for(Task.CLASSIFICATION), "y", Task.CLASSIFICATION)
    y = y.copy()
    y.iloc[:3] = 7  # a class with three rows
    pipeline = build_pipeline(
        build_estimator(lookup(Algorithm("logistic_regression")), {}, 0), x, Scaling.NONE, True
    )
    scores, folds = cross_validation(pipeline, x, y, Task.CLASSIFICATION, 5, 0)
    assert folds == 3
    assert "cv_accuracy_mean" in scores


def test_classification_rejects_a_continuous_target() -> None:
    from mlcycle_trainer.errors import InvalidInput

    with pytest.raises(InvalidInput) as excinfo:
        features_and_target(frame_for(Task.REGRESSION), "y", Task.CLASSIFICATION)
    assert excinfo.value.reason == "TargetUnsuitable"


class CountingModel:
    """A model whose predict takes `seconds` and records each input's row count."""

    def __init__(self, seconds: float = 0.0) -> None:
        self.seconds = seconds
        self.rows: list[int] = []

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        time.sleep(self.seconds)
        self.rows.append(len(frame))
        return np.zeros(len(frame))


def test_a_fast_model_gets_every_timed_call() -> None:
    model = CountingModel()
    inputs = [pd.DataFrame({"x": [1.0]})] * 30
    durations = timed_calls(model, inputs, min_calls=10, enough_seconds=60.0)  # type: ignore[arg-type]
    assert len(durations) == 30


def test_a_slow_model_stops_after_the_minimum_once_enough_time_passed() -> None:
    model = CountingModel(seconds=0.002)
    inputs = [pd.DataFrame({"x": [1.0]})] * 30
    durations = timed_calls(model, inputs, min_calls=10, enough_seconds=0.001)  # type: ignore[arg-type]
    assert len(durations) == 10
    assert min(durations) >= 0.002


def test_the_budget_stops_a_very_slow_model_before_the_minimum() -> None:
    model = CountingModel(seconds=0.02)
    inputs = [pd.DataFrame({"x": [1.0]})] * 30
    durations = timed_calls(  # type: ignore[arg-type]
        model, inputs, min_calls=20, enough_seconds=0.0, budget_seconds=0.05
    )
    assert len(durations) < 20
    assert sum(durations[:-1]) <= 0.05  # only the last call ran past the budget


def test_p99_of_a_slow_model_still_lies_below_its_slowest_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(evaluate, "LATENCY_ENOUGH_SECONDS", 0.0)
    monkeypatch.setattr(evaluate, "THROUGHPUT_ENOUGH_SECONDS", 0.0)
    model = CountingModel()
    x = pd.DataFrame({"x": np.arange(30, dtype=float)})
    metrics = evaluate.processing_metrics(model, x)  # type: ignore[arg-type]
    warm_up = 5
    one_row_calls = model.rows.count(1) - warm_up
    assert one_row_calls == evaluate.MIN_LATENCY_CALLS
    assert model.rows.count(evaluate.THROUGHPUT_BATCH_ROWS) == evaluate.MIN_THROUGHPUT_CALLS
    # with this many samples, the slowest call alone does not move the 99th percentile
    usual = np.ones(one_row_calls)
    one_outlier = np.append(usual[:-1], 1000.0)
    assert np.percentile(one_outlier, 99) == np.percentile(usual, 99)
    assert metrics["latency_p50_ms"] <= metrics["latency_p99_ms"]
