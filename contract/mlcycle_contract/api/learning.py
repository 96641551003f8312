"""The learning vocabulary: allow-listed algorithms, tasks, metrics and what fits with what.

Names only, never import paths: the trainer image maps each name to its estimator.
"""

from __future__ import annotations

from enum import StrEnum


class Task(StrEnum):
    """The kind of prediction."""

    CLASSIFICATION = "classification"
    REGRESSION = "regression"


class Algorithm(StrEnum):
    """An allow-listed scikit-learn estimator."""

    LOGISTIC_REGRESSION = "logistic_regression"
    RANDOM_FOREST_CLASSIFIER = "random_forest_classifier"
    GRADIENT_BOOSTING_CLASSIFIER = "gradient_boosting_classifier"
    HIST_GRADIENT_BOOSTING_CLASSIFIER = "hist_gradient_boosting_classifier"
    EXTRA_TREES_CLASSIFIER = "extra_trees_classifier"
    DECISION_TREE_CLASSIFIER = "decision_tree_classifier"
    SVC = "svc"
    KNN_CLASSIFIER = "knn_classifier"
    GAUSSIAN_NB = "gaussian_nb"
    MLP_CLASSIFIER = "mlp_classifier"
    LINEAR_REGRESSION = "linear_regression"
    RIDGE = "ridge"
    LASSO = "lasso"
    ELASTIC_NET = "elastic_net"
    RANDOM_FOREST_REGRESSOR = "random_forest_regressor"
    GRADIENT_BOOSTING_REGRESSOR = "gradient_boosting_regressor"
    HIST_GRADIENT_BOOSTING_REGRESSOR = "hist_gradient_boosting_regressor"
    EXTRA_TREES_REGRESSOR = "extra_trees_regressor"
    DECISION_TREE_REGRESSOR = "decision_tree_regressor"
    SVR = "svr"
    KNN_REGRESSOR = "knn_regressor"
    MLP_REGRESSOR = "mlp_regressor"


CLASSIFIERS: frozenset[Algorithm] = frozenset(
    {
        Algorithm.LOGISTIC_REGRESSION,
        Algorithm.RANDOM_FOREST_CLASSIFIER,
        Algorithm.GRADIENT_BOOSTING_CLASSIFIER,
        Algorithm.HIST_GRADIENT_BOOSTING_CLASSIFIER,
        Algorithm.EXTRA_TREES_CLASSIFIER,
        Algorithm.DECISION_TREE_CLASSIFIER,
        Algorithm.SVC,
        Algorithm.KNN_CLASSIFIER,
        Algorithm.GAUSSIAN_NB,
        Algorithm.MLP_CLASSIFIER,
    }
)


def algorithm_task(algorithm: Algorithm) -> Task:
    """The task an algorithm solves."""
    return Task.CLASSIFICATION if algorithm in CLASSIFIERS else Task.REGRESSION


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


def metrics_for(task: Task) -> list[Metric]:
    """The predictive metrics of a task, in declaration order."""
    return [metric for metric in Metric if metric_task(metric) == task]


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
