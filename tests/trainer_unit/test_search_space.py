"""The search space as Optuna samples it, and the per-fold scores a trial reports."""

from __future__ import annotations

import optuna
import pandas as pd
from sklearn.datasets import load_iris

from mlcycle_contract.api.algorithms import ALGORITHMS
from mlcycle_contract.api.learning import Metric, Task
from mlcycle_contract.api.parameters import ParameterSpace, ParameterType
from mlcycle_trainer.search_objective import folds_for
from mlcycle_trainer.search_space import (
    ALGORITHM_PARAMETER,
    GridSampler,
    grid,
    grid_size,
    suggest,
)

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_automl_samples_an_algorithm_then_its_own_parameters() -> None:
    spaces = {name: ALGORITHMS[name].search_space
              for name in ("knn_classifier", "mlp_classifier")}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(20):
        trial = study.ask()
        algorithm, parameters = suggest(trial, spaces)
        seen.add(algorithm)
        assert set(parameters) == set(spaces[algorithm])
        assert trial.params[ALGORITHM_PARAMETER] == algorithm
        assert all(name.startswith(f"{algorithm}.") for name in trial.params
                   if name != ALGORITHM_PARAMETER)
        if algorithm == "mlp_classifier":  # list choices reach scikit-learn as lists
            assert parameters["hidden_layer_sizes"] in ([64], [128], [64, 32])
        else:
            assert 1 <= parameters["n_neighbors"] <= 50 and parameters["p"] in (1, 2)
        study.tell(trial, 0.5)
    assert seen == set(spaces)


def test_one_algorithm_keeps_plain_parameter_names_and_grid_covers_every_point() -> None:
    spaces = {"svc": {
        "C": ParameterSpace(type=ParameterType.FLOAT, low=1, high=3, step=1),
        "kernel": ParameterSpace(type=ParameterType.CATEGORICAL, choices=["rbf", "linear"]),
    }}
    points = grid(spaces)
    assert points == {"C": [1.0, 2.0, 3.0], "kernel": ["rbf", "linear"]}
    assert grid_size(points) == 6
    study = optuna.create_study(sampler=GridSampler(points, seed=0))
    sampled = set()
    for _ in range(6):
        trial = study.ask()
        _, parameters = suggest(trial, spaces)
        sampled.add((parameters["C"], parameters["kernel"]))
        study.tell(trial, 0.0)
    assert len(sampled) == 6


def test_folds_are_stratified_and_score_the_objective_metric() -> None:
    x, y = load_iris(return_X_y=True, as_frame=True)
    folds = folds_for(x, pd.Series(y), Task.CLASSIFICATION, Metric.LOG_LOSS, 5, 0)
    assert len(folds.splits) == 5 and folds.sign == -1.0  # neg_log_loss, made a loss again
    single = folds_for(x, pd.Series(y), Task.CLASSIFICATION, Metric.ACCURACY, 0, 0)
    assert len(single.splits) == 1  # no cross-validation: one validation split
