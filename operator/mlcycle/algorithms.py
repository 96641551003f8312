"""Semantic checks of a TrainingJob's estimator settings, before any Job exists.

The CRD schema knows the algorithm names; only scikit-learn knows each estimator's
parameters and their valid values, so the operator asks it. The allow-list maps names to
classes here and in the trainer image; a unit test checks that both agree.
"""

from __future__ import annotations

import importlib
from typing import Any

from sklearn.utils._param_validation import InvalidParameterError

from mlcycle_contract.api.learning import Algorithm

ESTIMATOR_CLASSES: dict[Algorithm, str] = {
    Algorithm.LOGISTIC_REGRESSION: "sklearn.linear_model.LogisticRegression",
    Algorithm.RANDOM_FOREST_CLASSIFIER: "sklearn.ensemble.RandomForestClassifier",
    Algorithm.GRADIENT_BOOSTING_CLASSIFIER: "sklearn.ensemble.GradientBoostingClassifier",
    Algorithm.HIST_GRADIENT_BOOSTING_CLASSIFIER: "sklearn.ensemble.HistGradientBoostingClassifier",
    Algorithm.EXTRA_TREES_CLASSIFIER: "sklearn.ensemble.ExtraTreesClassifier",
    Algorithm.DECISION_TREE_CLASSIFIER: "sklearn.tree.DecisionTreeClassifier",
    Algorithm.SVC: "sklearn.svm.SVC",
    Algorithm.KNN_CLASSIFIER: "sklearn.neighbors.KNeighborsClassifier",
    Algorithm.GAUSSIAN_NB: "sklearn.naive_bayes.GaussianNB",
    Algorithm.MLP_CLASSIFIER: "sklearn.neural_network.MLPClassifier",
    Algorithm.LINEAR_REGRESSION: "sklearn.linear_model.LinearRegression",
    Algorithm.RIDGE: "sklearn.linear_model.Ridge",
    Algorithm.LASSO: "sklearn.linear_model.Lasso",
    Algorithm.ELASTIC_NET: "sklearn.linear_model.ElasticNet",
    Algorithm.RANDOM_FOREST_REGRESSOR: "sklearn.ensemble.RandomForestRegressor",
    Algorithm.GRADIENT_BOOSTING_REGRESSOR: "sklearn.ensemble.GradientBoostingRegressor",
    Algorithm.HIST_GRADIENT_BOOSTING_REGRESSOR: "sklearn.ensemble.HistGradientBoostingRegressor",
    Algorithm.EXTRA_TREES_REGRESSOR: "sklearn.ensemble.ExtraTreesRegressor",
    Algorithm.DECISION_TREE_REGRESSOR: "sklearn.tree.DecisionTreeRegressor",
    Algorithm.SVR: "sklearn.svm.SVR",
    Algorithm.KNN_REGRESSOR: "sklearn.neighbors.KNeighborsRegressor",
    Algorithm.MLP_REGRESSOR: "sklearn.neural_network.MLPRegressor",
}


def estimator_class(algorithm: Algorithm) -> type[Any]:
    module_name, class_name = ESTIMATOR_CLASSES[algorithm].rsplit(".", 1)
    cls: type[Any] = getattr(importlib.import_module(module_name), class_name)
    return cls


def hyperparameter_problem(algorithm: Algorithm, hyperparameters: dict[str, Any]) -> str | None:
    """None when scikit-learn accepts the hyperparameters; else a message naming the field."""
    cls = estimator_class(algorithm)
    known = sorted(cls().get_params())
    for name in hyperparameters:
        if name not in known:
            return (f"spec.hyperparameters.{name}: {algorithm.value} has no parameter "
                    f"{name!r}; valid parameters are {', '.join(known)}")
    try:
        cls(**hyperparameters)._validate_params()
    except InvalidParameterError as error:
        return f"spec.hyperparameters: {error}"
    except (TypeError, ValueError) as error:
        return f"spec.hyperparameters: {error}"
    return None
