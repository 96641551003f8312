"""The estimator of a TrainingJob, from the allow-list in `mlcycle_contract.api.algorithms`.

Only a name of that table becomes code, imported by the path the table gives; scikit-learn
checks the hyperparameters before any data is read.
"""

from __future__ import annotations

from typing import Any

from sklearn.base import BaseEstimator

from mlcycle_contract.api.algorithms import (
    ALGORITHMS,
    AlgorithmDefinition,
    hyperparameter_problem,
)
from mlcycle_contract.api.learning import Algorithm
from mlcycle_trainer.errors import INVALID_HYPERPARAMETER, INVALID_SPEC, InvalidInput


def lookup(algorithm: Algorithm | None) -> AlgorithmDefinition:
    if algorithm is None:
        raise InvalidInput(
            INVALID_SPEC,
            "spec.algorithm is required (the operator runs a search as single trainings)",
            "spec.algorithm",
        )
    return ALGORITHMS[algorithm]


def build_estimator(
    algorithm: AlgorithmDefinition, hyperparameters: dict[str, Any], seed: int
) -> BaseEstimator:
    """The estimator with the given hyperparameters, checked by scikit-learn's own rules.

    `random_state` defaults to the validation seed, so a run is reproducible.
    """
    problem = hyperparameter_problem(algorithm, hyperparameters)
    if problem is not None:
        raise InvalidInput(INVALID_HYPERPARAMETER, problem, "spec.hyperparameters")
    parameters = dict(hyperparameters)
    if "random_state" in algorithm.parameter_names():
        parameters.setdefault("random_state", seed)
    estimator: BaseEstimator = algorithm.estimator_class()(**parameters)
    return estimator
