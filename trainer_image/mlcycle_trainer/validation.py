"""How a model is validated: the objective, the gates' metrics, the holdout split, and
every metric measured on the fitted pipeline."""

from __future__ import annotations

import logging
import math

import pandas as pd
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from mlcycle_trainer import evaluate
from mlcycle_trainer.errors import INVALID_SPEC, TARGET_UNSUITABLE, InvalidInput
from mlcycle_trainer.specs import TrainingSpec
from mlcycle_trainer.vocabulary import (
    CLASSIFICATION,
    DEFAULT_METRIC,
    FIT_SECONDS,
    GENERALIZATION_GAP,
    LATENCY_P50_MS,
    LATENCY_P99_MS,
    MODEL_SIZE_BYTES,
    THROUGHPUT_ROWS_PER_SECOND,
    predictive_metrics,
)

logger = logging.getLogger(__name__)

MIN_ROWS = 10
PROCESSING_METRICS = (
    GENERALIZATION_GAP,
    LATENCY_P50_MS,
    LATENCY_P99_MS,
    THROUGHPUT_ROWS_PER_SECOND,
    MODEL_SIZE_BYTES,
    FIT_SECONDS,
)


def objective_metric(spec: TrainingSpec, task: str) -> str:
    """spec.objective.metric, or the task's default (accuracy, r2)."""
    metric = spec.objective_metric or DEFAULT_METRIC[task]
    if metric not in predictive_metrics(task):
        raise InvalidInput(
            INVALID_SPEC,
            f"spec.objective.metric {metric!r} does not fit a {task} algorithm; "
            f"use one of {', '.join(predictive_metrics(task))}",
        )
    return metric


def check_gates(spec: TrainingSpec, task: str) -> None:
    """Every gate tests a metric this task measures."""
    known = (*predictive_metrics(task), *PROCESSING_METRICS)
    for gate in spec.gates:
        if gate.metric not in known:
            raise InvalidInput(
                INVALID_SPEC,
                f"spec.validation.gates: {gate.metric!r} is not a {task} metric; "
                f"use one of {', '.join(known)}",
            )


def split(
    x: pd.DataFrame, y: pd.Series, task: str, fraction: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
    """Seeded holdout split, stratified for classification whenever the classes allow it."""
    if len(x) < MIN_ROWS:
        raise InvalidInput(
            TARGET_UNSUITABLE, f"only {len(x)} labelled rows; at least {MIN_ROWS} are needed"
        )
    stratify = y if task == CLASSIFICATION else None
    try:
        parts = train_test_split(x, y, test_size=fraction, random_state=seed, stratify=stratify)
    except ValueError as exc:  # a class too small to appear on both sides
        logger.warning("Holdout split is not stratified: %s", exc)
        parts = train_test_split(x, y, test_size=fraction, random_state=seed)
    x_train, x_holdout, y_train, y_holdout = parts
    return x_train, x_holdout, y_train, y_holdout


def measure(
    pipeline: Pipeline,
    spec: TrainingSpec,
    task: str,
    objective: str,
    train: tuple[pd.DataFrame, pd.Series],
    holdout: tuple[pd.DataFrame, pd.Series],
) -> tuple[dict[str, float], int]:
    """Holdout scores (plain names), training-set scores (train_*), the generalization gap,
    cross-validation (cv_*_mean/std), latency and throughput; and the folds used."""
    holdout_scores = evaluate.predictive_scores(pipeline, *holdout, task)
    train_scores = evaluate.predictive_scores(pipeline, *train, task)
    metrics = dict(holdout_scores)
    metrics.update({f"train_{name}": value for name, value in train_scores.items()})
    gap = evaluate.generalization_gap(train_scores, holdout_scores, objective)
    if gap is not None:
        metrics[GENERALIZATION_GAP] = gap
    cv, folds = evaluate.cross_validation(pipeline, *train, task, spec.folds, spec.seed)
    metrics.update(cv)
    metrics.update(evaluate.processing_metrics(pipeline, holdout[0]))
    return {key: value for key, value in metrics.items() if math.isfinite(value)}, folds
