"""What a trial reports to the pruner: an ensemble's cross-validated score as it grows (the
mean over every fold at each size), the running mean over folds otherwise, and never a
prune at the last step, where nothing is left to save."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from mlcycle_contract.api.algorithms import ALGORITHMS
from mlcycle_contract.api.learning import Metric, Task
from mlcycle_contract.api.search import effective_space
from mlcycle_contract.api.trainingjob import TrainingJobSpec
from mlcycle_trainer.algorithms import build_estimator
from mlcycle_trainer.preprocessing import build_pipeline
from mlcycle_trainer.search_objective import (
    FIRST_STAGE,
    Folds,
    evaluate,
    folds_for,
    member_stages,
    most_steps,
    pruner_for,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)


class AlwaysPrune(optuna.pruners.BasePruner):
    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return True


def _spec(algorithm: str, pruner: str, folds: int = 3,
          space: dict[str, Any] | None = None) -> TrainingJobSpec:
    search: dict[str, Any] = {"pruner": pruner}
    if space is not None:
        search["space"] = {algorithm: space}
    return TrainingJobSpec.model_validate({
        "datasetRef": {"name": "cancer"}, "algorithm": algorithm,
        "validation": {"folds": folds}, "search": search})


def _folds(count: int = 3) -> Folds:
    x, y = load_breast_cancer(return_X_y=True, as_frame=True)
    return folds_for(x, pd.Series(y), Task.CLASSIFICATION, Metric.ACCURACY, count, 0)


def _evaluate(spec: TrainingJobSpec, folds: Folds, algorithm: str,
              hyperparameters: dict[str, Any],
              pruner: optuna.pruners.BasePruner | None = None,
              ) -> tuple[float | None, dict[int, float]]:
    """(the objective, or None when pruned; the intermediate values)."""
    study = optuna.create_study(direction="maximize",
                                pruner=pruner or optuna.pruners.NopPruner())
    intermediate: dict[int, float] = {}
    try:
        return evaluate(study.ask(), spec, folds, algorithm, hyperparameters,
                        intermediate), intermediate
    except optuna.TrialPruned:
        return None, intermediate


def _cross_validated(spec: TrainingJobSpec, folds: Folds, algorithm: str,
                     hyperparameters: dict[str, Any]) -> float:
    """The mean score over the folds of the trainer's pipelines, fitted in one go."""
    scores = []
    for train_rows, test_rows in folds.splits:
        pipeline = build_pipeline(
            build_estimator(ALGORITHMS[algorithm], hyperparameters, spec.validation.seed),
            folds.x, spec.preprocessing.scaling, spec.preprocessing.one_hot_encode)
        fitted = pipeline.fit(folds.x.iloc[train_rows], folds.y.iloc[train_rows])
        scores.append(float(folds.scorer(fitted, folds.x.iloc[test_rows],
                                         folds.y.iloc[test_rows])))
    return float(np.mean(scores))


@pytest.mark.parametrize(("members", "stages"), [
    (60, [8, 16, 32, 60]), (64, [8, 16, 32, 64]), (8, [8]), (5, [5]), (9, [8, 9])])
def test_an_ensemble_is_scored_at_doubling_sizes_and_at_its_own(members: int,
                                                                 stages: list[int]) -> None:
    assert member_stages(members) == stages


def test_with_a_pruner_a_forest_reports_its_cross_validated_score_at_each_size() -> None:
    """Each step is the mean over all folds of forests of that size: the value a one-shot
    fit of that many trees gets, not the score of one fold."""
    spec, folds = _spec("random_forest_classifier", "median"), _folds()
    value, intermediate = _evaluate(spec, folds, "random_forest_classifier",
                                    {"n_estimators": 20})
    assert sorted(intermediate) == [0, 1, 2]  # 8, 16 and 20 trees
    for step, trees in enumerate([8, 16, 20]):
        assert intermediate[step] == pytest.approx(_cross_validated(
            spec, folds, "random_forest_classifier", {"n_estimators": trees}))
    assert value == intermediate[2]


def test_gradient_boosting_grows_its_stages_the_same_way() -> None:
    spec, folds = _spec("gradient_boosting_classifier", "median"), _folds()
    hyperparameters = {"n_estimators": 12, "subsample": 0.7}
    value, intermediate = _evaluate(spec, folds, "gradient_boosting_classifier",
                                    hyperparameters)
    assert sorted(intermediate) == [0, 1]
    assert intermediate[0] == pytest.approx(_cross_validated(
        spec, folds, "gradient_boosting_classifier",
        {**hyperparameters, "n_estimators": FIRST_STAGE}))
    assert value == pytest.approx(_cross_validated(
        spec, folds, "gradient_boosting_classifier", hyperparameters))


def test_a_forest_pruned_at_its_first_step_stops_at_its_first_size() -> None:
    spec, folds = _spec("random_forest_classifier", "median"), _folds()
    value, intermediate = _evaluate(spec, folds, "random_forest_classifier",
                                    {"n_estimators": 100}, AlwaysPrune())
    assert value is None and list(intermediate) == [0]
    assert intermediate[0] == pytest.approx(_cross_validated(
        spec, folds, "random_forest_classifier", {"n_estimators": FIRST_STAGE}))


def test_a_trial_is_never_pruned_at_its_last_step() -> None:
    """Its compute is spent by then: pruning would only lose its result. A forest of
    FIRST_STAGE trees has one step, its last."""
    value, intermediate = _evaluate(_spec("random_forest_classifier", "median"), _folds(),
                                    "random_forest_classifier",
                                    {"n_estimators": FIRST_STAGE}, AlwaysPrune())
    assert value is not None and list(intermediate) == [0]


def test_without_a_pruner_the_folds_are_the_steps_and_the_objective_is_the_same() -> None:
    folds = _folds()
    plain, intermediate = _evaluate(_spec("random_forest_classifier", "none"), folds,
                                    "random_forest_classifier", {"n_estimators": 20})
    assert sorted(intermediate) == [0, 1, 2]  # one running mean per fold
    assert intermediate[2] == plain
    staged, _ = _evaluate(_spec("random_forest_classifier", "median"), folds,
                          "random_forest_classifier", {"n_estimators": 20})
    assert staged == pytest.approx(plain)


def test_an_algorithm_without_members_reports_the_running_mean_of_its_folds() -> None:
    spec, folds = _spec("logistic_regression", "median"), _folds()
    hyperparameters = {"max_iter": 1000}
    scores = [_cross_validated(spec, replace(folds, splits=[split]), "logistic_regression",
                               hyperparameters) for split in folds.splits]
    value, intermediate = _evaluate(spec, folds, "logistic_regression", hyperparameters)
    assert intermediate == pytest.approx({step: float(np.mean(scores[:step + 1]))
                                          for step in range(3)})
    assert value == intermediate[2]
    pruned, intermediate = _evaluate(spec, folds, "logistic_regression", hyperparameters,
                                     AlwaysPrune())
    assert pruned is None and list(intermediate) == [0]  # after its first fold


@pytest.mark.parametrize(("pruner", "space", "steps"), [
    ("median", {"n_estimators": {"type": "int", "low": 30, "high": 60}}, 4),  # 8..32, 60
    ("median", {"max_depth": {"type": "int", "low": 2, "high": 8}}, 5),  # 100 by default
    ("hyperband", {"n_estimators": {"type": "categorical", "choices": [10, 500]}}, 7),
    ("none", {"n_estimators": {"type": "int", "low": 60, "high": 120}}, 3),  # the folds
])
def test_the_most_steps_of_a_search(pruner: str, space: dict[str, Any], steps: int) -> None:
    spec = _spec("random_forest_classifier", pruner, space=space)
    assert spec.search is not None
    assert most_steps(spec, effective_space(spec.search, spec.candidate_algorithms),
                      _folds()) == steps


def test_hyperband_spans_the_most_steps() -> None:
    spec = _spec("random_forest_classifier", "hyperband")
    assert spec.search is not None
    pruner = pruner_for(spec.search, 7)
    assert isinstance(pruner, optuna.pruners.HyperbandPruner)
    assert pruner._max_resource == 7
