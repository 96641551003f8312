"""Tasks and metric names, spelled as in the TrainingJob API (the operator's `learning`)."""

from __future__ import annotations

from typing import Final

CLASSIFICATION: Final = "classification"
REGRESSION: Final = "regression"

# Predictive metrics, on the holdout; cross-validation adds cv_<metric>_mean/_std and the
# training set train_<metric>.
CLASSIFICATION_METRICS: Final = ("accuracy", "f1_macro", "roc_auc", "log_loss")
REGRESSION_METRICS: Final = ("r2", "rmse", "mae")
MINIMIZED_METRICS: Final = frozenset({"log_loss", "rmse", "mae"})
DEFAULT_METRIC: Final = {CLASSIFICATION: "accuracy", REGRESSION: "r2"}

# Processing metrics, measured in-process on the fitted pipeline.
GENERALIZATION_GAP: Final = "generalization_gap"
LATENCY_P50_MS: Final = "latency_p50_ms"
LATENCY_P99_MS: Final = "latency_p99_ms"
THROUGHPUT_ROWS_PER_SECOND: Final = "throughput_rows_per_second"
MODEL_SIZE_BYTES: Final = "model_size_bytes"
FIT_SECONDS: Final = "fit_seconds"


def predictive_metrics(task: str) -> tuple[str, ...]:
    return CLASSIFICATION_METRICS if task == CLASSIFICATION else REGRESSION_METRICS


def is_minimized(metric: str) -> bool:
    return (
        metric in MINIMIZED_METRICS
        or metric.startswith("latency_")
        or metric
        in (
            MODEL_SIZE_BYTES,
            GENERALIZATION_GAP,
            FIT_SECONDS,
        )
    )
