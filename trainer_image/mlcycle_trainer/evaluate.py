"""Model evaluation: predictive metrics (holdout, cross-validation, training set) and
processing metrics (in-process latency and throughput), named as in the API's `learning`."""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    r2_score,
    roc_auc_score,
    root_mean_squared_error,
)
from sklearn.model_selection import KFold, StratifiedKFold, cross_validate
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from mlcycle_contract.api.learning import Direction, GateMetric, Metric, Task, metric_direction

logger = logging.getLogger(__name__)

# One-row predictions: up to LATENCY_CALLS, but a slow model stops after MIN_LATENCY_CALLS
# once LATENCY_ENOUGH_SECONDS have passed (a 100-tree forest takes ~10 ms a call: 200 calls
# were 2 of the trainer's seconds). From 101 samples on, the interpolated 99th percentile
# does not depend on the slowest call (its rank 0.99 * (n - 1) is at most n - 2), so p99
# still says how slow the tail is, not how slow the single worst call was.
LATENCY_CALLS = 200
MIN_LATENCY_CALLS = 101
LATENCY_ENOUGH_SECONDS = 0.5
# 100-row batches: the median of up to THROUGHPUT_CALLS, at least MIN_THROUGHPUT_CALLS.
THROUGHPUT_BATCH_ROWS = 100
THROUGHPUT_CALLS = 20
MIN_THROUGHPUT_CALLS = 10
THROUGHPUT_ENOUGH_SECONDS = 0.1
# Whatever the counts, a model this slow is measured on the calls made so far.
MEASUREMENT_BUDGET_SECONDS = 10.0
LATENCY_BATCH_MS = "latency_batch100_ms"

# metric -> (scikit-learn scorer name, sign that makes it the metric's value)
CV_SCORERS = {
    "accuracy": ("accuracy", 1.0),
    "f1_macro": ("f1_macro", 1.0),
    "roc_auc": ("roc_auc", 1.0),
    "log_loss": ("neg_log_loss", -1.0),
    "r2": ("r2", 1.0),
    "rmse": ("neg_root_mean_squared_error", -1.0),
    "mae": ("neg_mean_absolute_error", -1.0),
}
_PROBABILISTIC = ("roc_auc", "log_loss")


def has_probabilities(pipeline: Pipeline) -> bool:
    return hasattr(pipeline, "predict_proba")


def predictive_scores(
    pipeline: Pipeline, x: pd.DataFrame, y: pd.Series, task: Task
) -> dict[str, float]:
    """The task's metrics of a fitted pipeline on (x, y).

    roc_auc and log_loss need predict_proba (e.g. svc only has it with probability=True).
    """
    predicted = pipeline.predict(x)
    if task != Task.CLASSIFICATION:
        return {
            "r2": float(r2_score(y, predicted)),
            "rmse": float(root_mean_squared_error(y, predicted)),
            "mae": float(mean_absolute_error(y, predicted)),
        }
    scores = {
        "accuracy": float(accuracy_score(y, predicted)),
        "f1_macro": float(f1_score(y, predicted, average="macro")),
    }
    if has_probabilities(pipeline):
        classes = pipeline.classes_
        probabilities = pipeline.predict_proba(x)
        try:
            if len(classes) == 2:
                scores["roc_auc"] = float(roc_auc_score(y, probabilities[:, 1]))
            else:
                scores["roc_auc"] = float(
                    roc_auc_score(y, probabilities, multi_class="ovr", labels=classes)
                )
        except ValueError as exc:  # e.g. a class absent from these rows
            logger.warning("roc_auc not computed: %s", exc)
        scores["log_loss"] = float(log_loss(y, probabilities, labels=classes))
    return scores


def cross_validation(
    pipeline: Pipeline, x: pd.DataFrame, y: pd.Series, task: Task, folds: int, seed: int
) -> tuple[dict[str, float], int]:
    """cv_<metric>_mean and cv_<metric>_std over the training rows, and the folds used.

    Classification folds are stratified, and fewer when a class has fewer rows than folds.
    """
    if folds < 2:
        return {}, 0
    if task == Task.CLASSIFICATION:
        smallest_class = int(y.value_counts().min())
        if smallest_class < folds:
            logger.warning(
                "Cross-validation uses %d folds: a class has only %d rows",
                smallest_class,
                smallest_class,
            )
            folds = smallest_class
        if folds < 2:
            return {}, 0
        splitter: Any = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        metrics = ["accuracy", "f1_macro"]
        if has_probabilities(pipeline):
            metrics += list(_PROBABILISTIC)
    else:
        splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
        metrics = ["r2", "rmse", "mae"]
    multiclass = task == Task.CLASSIFICATION and y.nunique() > 2
    scoring = {
        metric: "roc_auc_ovr" if metric == "roc_auc" and multiclass else CV_SCORERS[metric][0]
        for metric in metrics
    }
    results = cross_validate(
        clone(pipeline), x, y, cv=splitter, scoring=scoring, error_score=np.nan
    )
    summary: dict[str, float] = {}
    for metric in metrics:
        values = results[f"test_{metric}"] * CV_SCORERS[metric][1]
        if np.isnan(values).all():
            continue
        summary[f"cv_{metric}_mean"] = float(np.nanmean(values))
        summary[f"cv_{metric}_std"] = float(np.nanstd(values))
    return summary, folds


def generalization_gap(
    train: dict[str, float], holdout: dict[str, float], metric: Metric
) -> float | None:
    """How much worse the holdout is than the training set on `metric` (> 0: overfitting)."""
    if metric not in train or metric not in holdout:
        return None
    difference = train[metric] - holdout[metric]
    return -difference if metric_direction(metric) == Direction.MINIMIZE else difference


def processing_metrics(pipeline: Pipeline, x: pd.DataFrame) -> dict[str, float]:
    """Median and 99th percentile latency of 1-row predictions, throughput of 100-row batches.

    Measured on one thread (BLAS and OpenMP pools limited to 1), as one request is served:
    on a busy node, OpenMP's thread hand-offs turn a 2 ms prediction into 20 ms, with
    seconds-long outliers.
    """
    with threadpool_limits(limits=1):
        return _measure_processing(pipeline, x)


def _measure_processing(pipeline: Pipeline, x: pd.DataFrame) -> dict[str, float]:
    rows = [x.iloc[[i % len(x)]] for i in range(LATENCY_CALLS)]
    for row in rows[:5]:
        pipeline.predict(row)  # warm up caches and lazy imports
    latencies = timed_calls(pipeline, rows, MIN_LATENCY_CALLS, LATENCY_ENOUGH_SECONDS)
    batch = x.sample(
        n=THROUGHPUT_BATCH_ROWS, replace=len(x) < THROUGHPUT_BATCH_ROWS, random_state=0
    )
    batch_seconds = float(np.median(timed_calls(
        pipeline, [batch] * THROUGHPUT_CALLS, MIN_THROUGHPUT_CALLS, THROUGHPUT_ENOUGH_SECONDS
    )))
    return {
        GateMetric.LATENCY_P50_MS.value: float(np.percentile(latencies, 50) * 1000),
        GateMetric.LATENCY_P99_MS.value: float(np.percentile(latencies, 99) * 1000),
        LATENCY_BATCH_MS: batch_seconds * 1000,
        GateMetric.THROUGHPUT_ROWS_PER_SECOND.value: THROUGHPUT_BATCH_ROWS / batch_seconds,
    }


def timed_calls(
    pipeline: Pipeline,
    inputs: list[pd.DataFrame],
    min_calls: int,
    enough_seconds: float,
    budget_seconds: float = MEASUREMENT_BUDGET_SECONDS,
) -> list[float]:
    """Seconds per predict call, one call per input; after `min_calls` calls, stopping once
    `enough_seconds` have passed, and after any call once `budget_seconds` have."""
    started = time.perf_counter()
    durations = []
    for frame in inputs:
        begin = time.perf_counter()
        pipeline.predict(frame)
        end = time.perf_counter()
        durations.append(end - begin)
        spent = end - started
        if spent > budget_seconds or (len(durations) >= min_calls and spent >= enough_seconds):
            break
    return durations
