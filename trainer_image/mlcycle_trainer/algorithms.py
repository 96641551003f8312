"""The allow-list: algorithm name -> (scikit-learn estimator class, task).

The only place that turns a TrainingJob's `algorithm` into code: names outside this table
are refused, and nothing is ever imported from a path given in a spec. The operator keeps
the same names and tasks in its `learning` module, without importing scikit-learn; a test
checks that both agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sklearn.base import BaseEstimator
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import ElasticNet, Lasso, LinearRegression, LogisticRegression, Ridge
from sklearn.naive_bayes import GaussianNB
from sklearn.neighbors import KNeighborsClassifier, KNeighborsRegressor
from sklearn.neural_network import MLPClassifier, MLPRegressor
from sklearn.svm import SVC, SVR
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from mlcycle_trainer.errors import (
    INVALID_HYPERPARAMETER,
    UNKNOWN_ALGORITHM,
    UNKNOWN_HYPERPARAMETER,
    InvalidInput,
    name_list,
)
from mlcycle_trainer.vocabulary import CLASSIFICATION, REGRESSION


@dataclass(frozen=True)
class Algorithm:
    """One allow-listed estimator."""

    name: str
    estimator: type[BaseEstimator]
    task: str

    def parameter_names(self) -> list[str]:
        return sorted(self.estimator().get_params(deep=False))


def _table(*entries: tuple[str, type[BaseEstimator], str]) -> dict[str, Algorithm]:
    return {name: Algorithm(name, estimator, task) for name, estimator, task in entries}


ALGORITHMS: dict[str, Algorithm] = _table(
    ("logistic_regression", LogisticRegression, CLASSIFICATION),
    ("random_forest_classifier", RandomForestClassifier, CLASSIFICATION),
    ("gradient_boosting_classifier", GradientBoostingClassifier, CLASSIFICATION),
    ("hist_gradient_boosting_classifier", HistGradientBoostingClassifier, CLASSIFICATION),
    ("extra_trees_classifier", ExtraTreesClassifier, CLASSIFICATION),
    ("decision_tree_classifier", DecisionTreeClassifier, CLASSIFICATION),
    ("svc", SVC, CLASSIFICATION),
    ("knn_classifier", KNeighborsClassifier, CLASSIFICATION),
    ("gaussian_nb", GaussianNB, CLASSIFICATION),
    ("mlp_classifier", MLPClassifier, CLASSIFICATION),
    ("linear_regression", LinearRegression, REGRESSION),
    ("ridge", Ridge, REGRESSION),
    ("lasso", Lasso, REGRESSION),
    ("elastic_net", ElasticNet, REGRESSION),
    ("random_forest_regressor", RandomForestRegressor, REGRESSION),
    ("gradient_boosting_regressor", GradientBoostingRegressor, REGRESSION),
    ("hist_gradient_boosting_regressor", HistGradientBoostingRegressor, REGRESSION),
    ("extra_trees_regressor", ExtraTreesRegressor, REGRESSION),
    ("decision_tree_regressor", DecisionTreeRegressor, REGRESSION),
    ("svr", SVR, REGRESSION),
    ("knn_regressor", KNeighborsRegressor, REGRESSION),
    ("mlp_regressor", MLPRegressor, REGRESSION),
)


def lookup(name: str) -> Algorithm:
    try:
        return ALGORITHMS[name]
    except KeyError:
        raise InvalidInput(
            UNKNOWN_ALGORITHM,
            f"spec.algorithm {name!r} is not allow-listed; "
            f"use one of {name_list(sorted(ALGORITHMS), 50)}",
        ) from None


def build_estimator(
    algorithm: Algorithm, hyperparameters: dict[str, Any], seed: int
) -> BaseEstimator:
    """The estimator with the given hyperparameters, checked by scikit-learn's own rules.

    `random_state` defaults to the validation seed, so a run is reproducible.
    """
    valid = algorithm.parameter_names()
    unknown = sorted(set(hyperparameters) - set(valid))
    if unknown:
        raise InvalidInput(
            UNKNOWN_HYPERPARAMETER,
            f"spec.hyperparameters: {name_list(unknown)} "
            f"{'is not a parameter' if len(unknown) == 1 else 'are not parameters'} of "
            f"{algorithm.name}; valid: {name_list(valid, 60)}",
        )
    parameters = dict(hyperparameters)
    if "random_state" in valid and "random_state" not in parameters:
        parameters["random_state"] = seed
    estimator = algorithm.estimator(**parameters)
    check_parameters(estimator, algorithm.name)
    return estimator


def check_parameters(estimator: BaseEstimator, algorithm_name: str) -> None:
    """Run scikit-learn's parameter validation now rather than deep inside fit()."""
    validate = getattr(estimator, "_validate_params", None)
    if not callable(validate):
        return
    try:
        validate()
    except (ValueError, TypeError) as exc:
        raise InvalidInput(
            INVALID_HYPERPARAMETER, f"spec.hyperparameters of {algorithm_name}: {exc}"
        ) from exc
