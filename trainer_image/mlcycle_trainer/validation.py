"""How a model is validated: the holdout split (the Dataset's spec.split, unless the
TrainingJob sets its own holdout fraction) and every metric measured on the fitted pipeline."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline

from mlcycle_contract.api.dataset import SplitSpec
from mlcycle_contract.api.evaluation import ValidationSpec
from mlcycle_contract.api.learning import GateMetric, Metric, Task
from mlcycle_trainer import evaluate
from mlcycle_trainer.errors import INVALID_SPLIT, TARGET_UNSUITABLE, InvalidInput

MIN_ROWS = 10
STRATIFY_FIELD = "spec.split.stratify"


@dataclass(frozen=True)
class Holdout:
    """How the rows are split into training and holdout rows."""

    fraction: float
    seed: int
    stratify: bool

    @classmethod
    def resolve(cls, split: SplitSpec, validation: ValidationSpec, task: Task) -> Holdout:
        """The Dataset's split; the TrainingJob may hold out another fraction. Only a
        classification target has classes to stratify by."""
        return cls(
            fraction=validation.holdout_fraction or split.test_fraction,
            seed=split.seed,
            stratify=split.stratify and task == Task.CLASSIFICATION,
        )


def split(
    x: pd.DataFrame, y: pd.Series, holdout: Holdout
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series, pd.Series]:
    """The seeded holdout split; stratified, when asked, or an error naming the field."""
    if len(x) < MIN_ROWS:
        raise InvalidInput(
            TARGET_UNSUITABLE, f"only {len(x)} labelled rows; at least {MIN_ROWS} are needed"
        )
    if holdout.stratify:
        counts = y.value_counts()
        if counts.min() < 2:
            raise InvalidInput(
                INVALID_SPLIT,
                f"the Dataset's {STRATIFY_FIELD} is true, but class '{counts.idxmin()}' has only "
                f"{counts.min()} row; a stratified split needs at least 2 rows of every class. "
                f"Set {STRATIFY_FIELD}: false, or add rows",
                STRATIFY_FIELD,
            )
    try:
        parts = train_test_split(
            x,
            y,
            test_size=holdout.fraction,
            random_state=holdout.seed,
            stratify=y if holdout.stratify else None,
        )
    except ValueError as exc:  # e.g. fewer holdout rows than classes
        if not holdout.stratify:
            raise
        raise InvalidInput(
            INVALID_SPLIT,
            f"the Dataset's {STRATIFY_FIELD} is true, but the rows cannot be split so: {exc}. "
            f"Set {STRATIFY_FIELD}: false, or hold out more rows",
            STRATIFY_FIELD,
        ) from exc
    x_train, x_holdout, y_train, y_holdout = parts
    return x_train, x_holdout, y_train, y_holdout


def measure(
    pipeline: Pipeline,
    validation: ValidationSpec,
    task: Task,
    objective: Metric,
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
        metrics[GateMetric.GENERALIZATION_GAP.value] = gap
    cv, folds = evaluate.cross_validation(
        pipeline, *train, task, validation.folds, validation.seed
    )
    metrics.update(cv)
    metrics.update(evaluate.processing_metrics(pipeline, holdout[0]))
    return {key: value for key, value in metrics.items() if math.isfinite(value)}, folds
