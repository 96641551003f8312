"""Metrics carry the names the operator's gates and status use."""

from __future__ import annotations

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
from mlcycle_trainer.algorithms import build_estimator, lookup
from mlcycle_trainer.evaluate import cross_validation, generalization_gap
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
