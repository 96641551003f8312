"""What one trial of a search computes: the cross-validated score of one configuration, and
the intermediate values a pruner reads on the way. The search workers and the benchmark's
in-process search (`bench.search.run`) both call `evaluate`, so the benchmark measures this.

A trial reports a value per step and, when a pruner is set, asks it after every step but
the last (a trial pruned at its last step would have spent all its compute and lost its
result). The steps are:

- for an ensemble that warm_start grows (the table's `members`: forests, gradient boosting)
  when a pruner is set: the ensemble's size, doubling from `FIRST_STAGE` members up to the
  trial's own. Every fold's model grows to that size, and the step's value is the mean score
  over all folds. Trials are compared at equal size, on every validation row (few ties,
  where one fold of a small dataset scores in steps of one row), along a curve that mostly
  rises (Optuna's median pruner compares a trial's best value so far). A trial pruned at 8
  members has spent a small part of its fits, and the last step's value is the score of
  full-size models, as a single fit makes them. A trial holds one model and the
  preprocessed rows of each fold meanwhile.
- otherwise: the folds, the value being the running mean of the folds scored so far.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import pandas as pd
from sklearn.base import clone
from sklearn.metrics import get_scorer
from sklearn.model_selection import KFold, ShuffleSplit, StratifiedKFold, StratifiedShuffleSplit
from sklearn.pipeline import Pipeline

from mlcycle_contract.api.algorithms import ALGORITHMS, AlgorithmDefinition
from mlcycle_contract.api.learning import Metric, Task
from mlcycle_contract.api.search import Pruner, SearchSpec
from mlcycle_contract.api.trainingjob import TrainingJobSpec
from mlcycle_trainer.algorithms import build_estimator
from mlcycle_trainer.evaluate import CV_SCORERS
from mlcycle_trainer.preprocessing import build_pipeline
from mlcycle_trainer.search_space import Spaces

VALIDATION_FRACTION = 0.2  # of the training rows, when there is no cross-validation
FIRST_STAGE = 8  # members of a growing ensemble at its first step
GROWTH = 2  # how much it grows at each step


@dataclass(frozen=True)
class Folds:
    """The rows every trial is scored on: cross-validation folds of the training rows, or
    one validation split of them when spec.validation.folds is 0."""

    x: pd.DataFrame
    y: pd.Series
    splits: list[tuple[np.ndarray, np.ndarray]]
    scorer: Any
    sign: float  # makes the scorer's value the metric's value (losses are negated)
    metric: Metric

    def score(self, model: Any, x: Any, y: pd.Series, fold: int) -> float:
        score = self.sign * float(self.scorer(model, x, y))
        if math.isnan(score):
            raise ValueError(f"{self.metric.value} is undefined on fold {fold}")
        return score


def folds_for(x: pd.DataFrame, y: pd.Series, task: Task, metric: Metric, folds: int,
              seed: int) -> Folds:
    """Stratified for classification, and fewer folds when a class has fewer rows."""
    classification = task == Task.CLASSIFICATION
    if classification:
        folds = min(folds, int(y.value_counts().min()))
    splitter: Any
    if folds >= 2:
        splitter = (StratifiedKFold if classification else KFold)(
            n_splits=folds, shuffle=True, random_state=seed)
    else:
        splitter = (StratifiedShuffleSplit if classification and y.value_counts().min() >= 2
                    else ShuffleSplit)(n_splits=1, test_size=VALIDATION_FRACTION,
                                       random_state=seed)
    name, sign = CV_SCORERS[metric.value]
    if name == "roc_auc" and y.nunique() > 2:
        name = "roc_auc_ovr"
    return Folds(x, y, list(splitter.split(x, y)), get_scorer(name), sign, metric)


def member_stages(members: int) -> list[int]:
    """The sizes a growing ensemble of `members` members is scored at: 8, 16, 32, ... and
    its own size last."""
    stages = []
    size = FIRST_STAGE
    while size < members:
        stages.append(size)
        size *= GROWTH
    return [*stages, members]


def staged(search: SearchSpec | None, definition: AlgorithmDefinition) -> bool:
    """Whether a trial of this algorithm grows its ensembles step by step: only for a pruner,
    as scoring each size costs predictions that a search without one does not need."""
    pruning = search is not None and search.pruner != Pruner.NONE
    return pruning and definition.members is not None


def evaluate(trial: optuna.Trial, spec: TrainingJobSpec, folds: Folds, algorithm: str,
             hyperparameters: dict[str, Any], intermediate: dict[int, float]) -> float:
    """The configuration's mean score over the folds; its value at every step goes to
    `intermediate` and to the trial, which raises TrialPruned when the pruner stops it."""
    definition = ALGORITHMS[algorithm]
    estimator = build_estimator(definition, hyperparameters, spec.validation.seed)
    pipeline = build_pipeline(estimator, folds.x, spec.preprocessing.scaling,
                              spec.preprocessing.one_hot_encode)
    if staged(spec.search, definition):
        assert definition.members is not None
        members = int(estimator.get_params()[definition.members])
        return _grown(trial, folds, pipeline, definition.members, member_stages(members),
                      intermediate)
    return _fold_by_fold(trial, folds, pipeline, intermediate)


def _report(trial: optuna.Trial, intermediate: dict[int, float], step: int, value: float,
            last: bool) -> None:
    intermediate[step] = value
    trial.report(value, step)
    if not last and trial.should_prune():
        raise optuna.TrialPruned(f"pruned at step {step}")


def _grown(trial: optuna.Trial, folds: Folds, pipeline: Pipeline, members: str,
           stages: list[int], intermediate: dict[int, float]) -> float:
    # Each fold's rows are preprocessed once: refitting the preprocessing at every size
    # cost more than growing a small forest (41% more CPU than one fit, 12% so).
    prepared = []
    for train_rows, test_rows in folds.splits:
        preprocess = clone(pipeline[:-1])
        x_train = preprocess.fit_transform(folds.x.iloc[train_rows], folds.y.iloc[train_rows])
        prepared.append((x_train, folds.y.iloc[train_rows],
                         preprocess.transform(folds.x.iloc[test_rows]), folds.y.iloc[test_rows],
                         clone(pipeline[-1]).set_params(warm_start=True)))
    value = math.nan
    for step, size in enumerate(stages):
        scores = []
        for fold, (x_train, y_train, x_test, y_test, model) in enumerate(prepared):
            # warm_start keeps the members fitted so far and adds the rest.
            model.set_params(**{members: size}).fit(x_train, y_train)
            scores.append(folds.score(model, x_test, y_test, fold))
        value = float(np.mean(scores))
        _report(trial, intermediate, step, value, step == len(stages) - 1)
    return value


def _fold_by_fold(trial: optuna.Trial, folds: Folds, pipeline: Pipeline,
                  intermediate: dict[int, float]) -> float:
    scores = []
    for fold, (train_rows, test_rows) in enumerate(folds.splits):
        model = clone(pipeline).fit(folds.x.iloc[train_rows], folds.y.iloc[train_rows])
        scores.append(folds.score(model, folds.x.iloc[test_rows], folds.y.iloc[test_rows],
                                  fold))
        _report(trial, intermediate, fold, float(np.mean(scores)),
                fold == len(folds.splits) - 1)
    return float(np.mean(scores))


def most_steps(spec: TrainingJobSpec, spaces: Spaces, folds: Folds) -> int:
    """The most steps a trial of this search reports (Hyperband's maximum resource)."""
    steps = [len(folds.splits)]
    for algorithm, space in spaces.items():
        definition = ALGORITHMS[algorithm]
        if staged(spec.search, definition):
            assert definition.members is not None
            sampled = space.get(definition.members)
            upper = (max(sampled.candidate_values()) if sampled is not None else
                     spec.hyperparameters.get(definition.members,
                                              definition.estimator_class()().get_params()[
                                                  definition.members]))
            steps.append(len(member_stages(int(upper))))
    return max(steps)


def pruner_for(search: SearchSpec, steps: int) -> optuna.pruners.BasePruner:
    if search.pruner == Pruner.MEDIAN:
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0)
    if search.pruner == Pruner.SUCCESSIVE_HALVING:
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1)
    if search.pruner == Pruner.HYPERBAND:
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=steps)
    return optuna.pruners.NopPruner()
