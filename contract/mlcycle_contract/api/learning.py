"""The learning vocabulary: allow-listed algorithms, tasks, metrics and what fits with what.

The algorithms are the names of the table in `api.algorithms`.
"""

from __future__ import annotations

from enum import StrEnum

from mlcycle_contract.api.algorithms import ALGORITHMS
from mlcycle_contract.api.algorithms import Task as Task  # part of the vocabulary

Algorithm = StrEnum(  # type: ignore[misc]  # mypy takes only literal members
    "Algorithm", {name.upper(): name for name in ALGORITHMS}, module=__name__
)
Algorithm.__doc__ = "An allow-listed scikit-learn estimator."

CLASSIFIERS: frozenset[Algorithm] = frozenset(
    Algorithm(name) for name, entry in ALGORITHMS.items() if entry.task == Task.CLASSIFICATION
)


def algorithm_task(algorithm: Algorithm) -> Task:
    """The task an algorithm solves."""
    return ALGORITHMS[algorithm].task


def algorithms_for(task: Task) -> list[Algorithm]:
    """The algorithms solving a task, in declaration order."""
    return [algorithm for algorithm in Algorithm if algorithm_task(algorithm) == task]


class Metric(StrEnum):
    """A predictive metric, computed on held-out data."""

    ACCURACY = "accuracy"
    F1_MACRO = "f1_macro"
    ROC_AUC = "roc_auc"
    LOG_LOSS = "log_loss"
    R2 = "r2"
    RMSE = "rmse"
    MAE = "mae"


class Direction(StrEnum):
    """Whether a higher or a lower metric value is better."""

    MAXIMIZE = "maximize"
    MINIMIZE = "minimize"


CLASSIFICATION_METRICS: frozenset[Metric] = frozenset(
    {Metric.ACCURACY, Metric.F1_MACRO, Metric.ROC_AUC, Metric.LOG_LOSS}
)
MINIMIZED_METRICS: frozenset[Metric] = frozenset({Metric.LOG_LOSS, Metric.RMSE, Metric.MAE})

# The objective when a TrainingJob names none.
DEFAULT_METRIC = {Task.CLASSIFICATION: Metric.ACCURACY, Task.REGRESSION: Metric.R2}


def metric_task(metric: Metric) -> Task:
    """The task a predictive metric applies to."""
    return Task.CLASSIFICATION if metric in CLASSIFICATION_METRICS else Task.REGRESSION


def metric_direction(metric: Metric) -> Direction:
    """Whether the metric is maximized or minimized."""
    return Direction.MINIMIZE if metric in MINIMIZED_METRICS else Direction.MAXIMIZE


class GateMetric(StrEnum):
    """A metric a validation gate can test: predictive (on the holdout) or processing."""

    ACCURACY = "accuracy"
    F1_MACRO = "f1_macro"
    ROC_AUC = "roc_auc"
    LOG_LOSS = "log_loss"
    R2 = "r2"
    RMSE = "rmse"
    MAE = "mae"
    GENERALIZATION_GAP = "generalization_gap"
    LATENCY_P50_MS = "latency_p50_ms"
    LATENCY_P99_MS = "latency_p99_ms"
    THROUGHPUT_ROWS_PER_SECOND = "throughput_rows_per_second"
    MODEL_SIZE_BYTES = "model_size_bytes"


def gate_metric_task(metric: GateMetric) -> Task | None:
    """The task a gate metric is limited to, None for task-independent metrics."""
    predictive = {m.value for m in Metric}
    return metric_task(Metric(metric.value)) if metric.value in predictive else None
