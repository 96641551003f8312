"""The allow-list of algorithms, as data: the only place where an algorithm's name meets code.

Each entry names a scikit-learn estimator by the path of the module that defines it, which
is also the name skops records in a saved model (imported only when a program asks for the
class, so this package never imports scikit-learn itself), the task it solves, the default
search space of its main hyperparameters, how it can report intermediate values while it
fits (for a pruner), and the other types its fitted model holds that skops does not trust by
default (sub-estimators, trees). The model server trusts these names and no others.
`learning.Algorithm`, and so the CRDs, are derived from this table: adding an algorithm is
one entry here plus regenerated CRDs (`python -m mlcycle.crdgen`) and estimator parameters
(`python -m mlcycle_contract.paramgen`: its parameters and scikit-learn's rules for their
values, as data, `api.estimator_parameters`). Nothing is ever imported from a path given in
a spec.
"""

from __future__ import annotations

import importlib
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from mlcycle_contract.api.estimator_parameters import EstimatorParameters, estimator_parameters
from mlcycle_contract.api.parameters import ParameterSpace, ParameterType


class Task(StrEnum):
    """The kind of prediction."""

    CLASSIFICATION = "classification"
    REGRESSION = "regression"


class IntermediateValues(StrEnum):
    """How an estimator can report progress before its fit ends, so a pruner can stop it."""

    NONE = "none"
    STAGED_PREDICT = "staged_predict"  # boosting: a prediction after every stage
    PARTIAL_FIT = "partial_fit"  # one more pass over the data per call
    WARM_START = "warm_start"  # refit with more members, keeping the fitted ones


# The types of the trainer's preprocessing around every algorithm, as skops names them, and
# the one it holds outside scikit-learn (a fitted imputer keeps its dtype).
PIPELINE_TRUSTED_TYPES: tuple[str, ...] = (
    "sklearn.pipeline.Pipeline",
    "sklearn.compose._column_transformer.ColumnTransformer",
    "sklearn.impute._base.SimpleImputer",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.preprocessing._data.MinMaxScaler",
    "sklearn.preprocessing._encoders.OneHotEncoder",
    "sklearn.preprocessing._encoders.OrdinalEncoder",
    "numpy.dtype",
)


class AlgorithmDefinition(BaseModel):
    """One allow-listed estimator."""

    model_config = ConfigDict(frozen=True)

    name: str
    estimator: str
    task: Task
    search_space: dict[str, ParameterSpace]
    intermediate_values: IntermediateValues = IntermediateValues.NONE
    members: str | None = None
    """The hyperparameter counting an ensemble's members (trees, boosting iterations) when
    warm_start grows the fitted ensemble in place to the same model a single fit makes: a
    pruned search scores the ensemble as it grows and stops a trial before its fit ends."""
    trusted_types: tuple[str, ...] = ()

    def estimator_class(self) -> type[Any]:
        module_name, _, class_name = self.estimator.rpartition(".")
        cls: type[Any] = getattr(importlib.import_module(module_name), class_name)
        return cls

    def parameters(self) -> EstimatorParameters:
        """The estimator's parameters, defaults and constraints, without scikit-learn."""
        return estimator_parameters(self.estimator)

    def parameter_names(self) -> list[str]:
        return sorted(self.parameters().defaults)

    def skops_trusted_types(self) -> list[str]:
        """The types a model server may load from this algorithm's pipeline."""
        return sorted({*PIPELINE_TRUSTED_TYPES, self.estimator, *self.trusted_types})


def unknown_parameter_problem(algorithm: AlgorithmDefinition, name: str) -> str | None:
    """None when the estimator has a parameter of this name; else which ones it has."""
    known = algorithm.parameter_names()
    if name in known:
        return None
    return (f"{algorithm.name} has no parameter {name!r}; "
            f"valid parameters are {', '.join(known)}")


def hyperparameter_problem(
    algorithm: AlgorithmDefinition, hyperparameters: dict[str, Any]
) -> str | None:
    """None when scikit-learn would accept the hyperparameters; else a message naming the
    field. Names are checked first, then values in the order scikit-learn checks them."""
    for name in hyperparameters:
        unknown = unknown_parameter_problem(algorithm, name)
        if unknown is not None:
            return f"spec.hyperparameters.{name}: {unknown}"
    parameters = algorithm.parameters()
    for name in parameters.defaults:
        if name in hyperparameters:
            problem = parameters.value_problem(name, hyperparameters[name])
            if problem is not None:
                return f"spec.hyperparameters.{name}: {problem}"
    return None


def _int(low: int, high: int, log: bool = False) -> ParameterSpace:
    return ParameterSpace(type=ParameterType.INT, low=low, high=high, log=log)


def _float(low: float, high: float, log: bool = False) -> ParameterSpace:
    return ParameterSpace(type=ParameterType.FLOAT, low=low, high=high, log=log)


def _choice(*choices: Any) -> ParameterSpace:
    return ParameterSpace(type=ParameterType.CATEGORICAL, choices=list(choices))


_TREE = ("sklearn.tree._tree.Tree",)
_TREES_C = ("sklearn.tree._classes.DecisionTreeClassifier", *_TREE)
_TREES_R = ("sklearn.tree._classes.DecisionTreeRegressor", *_TREE)
_EXTRA_TREES_C = ("sklearn.tree._classes.ExtraTreeClassifier", *_TREE)
_EXTRA_TREES_R = ("sklearn.tree._classes.ExtraTreeRegressor", *_TREE)
_LABELS = "sklearn.preprocessing._label.LabelEncoder"
_HIST_TREE = ("sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",)
_NEIGHBORS = (
    "sklearn.neighbors._kd_tree.KDTree",
    "sklearn.neighbors._ball_tree.BallTree",
    "sklearn.metrics._dist_metrics.EuclideanDistance64",
    "sklearn.metrics._dist_metrics.ManhattanDistance64",
    "sklearn.metrics._dist_metrics.MinkowskiDistance64",
)
_MLP = (
    "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
    "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
)

_FOREST_SPACE = {
    "n_estimators": _int(50, 500, log=True),
    "max_depth": _int(2, 32, log=True),
    "min_samples_leaf": _int(1, 20, log=True),
    "max_features": _float(0.1, 1.0),
}
_BOOSTING_SPACE = {
    "n_estimators": _int(50, 500, log=True),
    "learning_rate": _float(0.01, 0.3, log=True),
    "max_depth": _int(2, 8),
    "subsample": _float(0.5, 1.0),
}
_HIST_BOOSTING_SPACE = {
    "max_iter": _int(50, 500, log=True),
    "learning_rate": _float(0.01, 0.3, log=True),
    "max_leaf_nodes": _int(8, 128, log=True),
    "l2_regularization": _float(1e-6, 10.0, log=True),
}
_TREE_SPACE = {"max_depth": _int(2, 32, log=True), "min_samples_leaf": _int(1, 20, log=True)}
_NEIGHBORS_SPACE = {
    "n_neighbors": _int(1, 50, log=True),
    "weights": _choice("uniform", "distance"),
    "p": _choice(1, 2),
}
_MLP_SPACE = {
    "hidden_layer_sizes": _choice([64], [128], [64, 32]),
    "alpha": _float(1e-6, 1e-1, log=True),
    "learning_rate_init": _float(1e-4, 1e-1, log=True),
}
_SVM_SPACE = {"C": _float(1e-2, 1e3, log=True), "kernel": _choice("rbf", "linear", "poly")}

# The table. Columns: name, estimator (where it is defined), task, default search space, how
# it reports intermediate values, the other types its fitted model holds.
_C, _R = Task.CLASSIFICATION, Task.REGRESSION
_NONE, _STAGED = IntermediateValues.NONE, IntermediateValues.STAGED_PREDICT
_PARTIAL, _WARM = IntermediateValues.PARTIAL_FIT, IntermediateValues.WARM_START
_ROWS: tuple[tuple[str, str, Task, dict[str, ParameterSpace], IntermediateValues,
                   tuple[str, ...]], ...] = (
    ("logistic_regression", "sklearn.linear_model._logistic.LogisticRegression", _C,
     {"C": _float(1e-3, 1e3, log=True)}, _WARM, ()),
    ("random_forest_classifier", "sklearn.ensemble._forest.RandomForestClassifier", _C,
     _FOREST_SPACE, _WARM, _TREES_C),
    ("gradient_boosting_classifier", "sklearn.ensemble._gb.GradientBoostingClassifier", _C,
     _BOOSTING_SPACE, _STAGED, (*_TREES_R, "sklearn.dummy.DummyClassifier")),
    ("hist_gradient_boosting_classifier",
     "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
     _C, _HIST_BOOSTING_SPACE, _STAGED, (*_HIST_TREE, _LABELS)),
    ("extra_trees_classifier", "sklearn.ensemble._forest.ExtraTreesClassifier", _C,
     _FOREST_SPACE, _WARM, _EXTRA_TREES_C),
    ("decision_tree_classifier", "sklearn.tree._classes.DecisionTreeClassifier", _C,
     _TREE_SPACE, _NONE, _TREE),
    ("svc", "sklearn.svm._classes.SVC", _C, _SVM_SPACE, _NONE, ()),
    ("knn_classifier", "sklearn.neighbors._classification.KNeighborsClassifier", _C,
     _NEIGHBORS_SPACE, _NONE, _NEIGHBORS),
    ("gaussian_nb", "sklearn.naive_bayes.GaussianNB", _C,
     {"var_smoothing": _float(1e-12, 1e-6, log=True)}, _PARTIAL, ()),
    ("mlp_classifier", "sklearn.neural_network._multilayer_perceptron.MLPClassifier", _C,
     _MLP_SPACE, _PARTIAL, (*_MLP, "sklearn.preprocessing._label.LabelBinarizer")),
    ("sgd_classifier", "sklearn.linear_model._stochastic_gradient.SGDClassifier", _C,
     {"alpha": _float(1e-6, 1e-1, log=True),
      "loss": _choice("hinge", "log_loss", "modified_huber"),
      "penalty": _choice("l2", "l1", "elasticnet")}, _PARTIAL, ()),
    ("adaboost_classifier", "sklearn.ensemble._weight_boosting.AdaBoostClassifier", _C,
     {"n_estimators": _int(25, 400, log=True), "learning_rate": _float(0.01, 2.0, log=True)},
     _STAGED, _TREES_C),
    ("linear_regression", "sklearn.linear_model._base.LinearRegression", _R,
     {"fit_intercept": _choice(True, False)}, _NONE, ()),
    ("ridge", "sklearn.linear_model._ridge.Ridge", _R,
     {"alpha": _float(1e-3, 1e3, log=True)}, _NONE, ()),
    ("lasso", "sklearn.linear_model._coordinate_descent.Lasso", _R,
     {"alpha": _float(1e-4, 10.0, log=True)}, _WARM, ()),
    ("elastic_net", "sklearn.linear_model._coordinate_descent.ElasticNet", _R,
     {"alpha": _float(1e-4, 10.0, log=True), "l1_ratio": _float(0.0, 1.0)}, _WARM, ()),
    ("random_forest_regressor", "sklearn.ensemble._forest.RandomForestRegressor", _R,
     _FOREST_SPACE, _WARM, _TREES_R),
    ("gradient_boosting_regressor", "sklearn.ensemble._gb.GradientBoostingRegressor", _R,
     _BOOSTING_SPACE, _STAGED, (*_TREES_R, "sklearn.dummy.DummyRegressor")),
    ("hist_gradient_boosting_regressor",
     "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor",
     _R, _HIST_BOOSTING_SPACE, _STAGED, _HIST_TREE),
    ("extra_trees_regressor", "sklearn.ensemble._forest.ExtraTreesRegressor", _R,
     _FOREST_SPACE, _WARM, _EXTRA_TREES_R),
    ("decision_tree_regressor", "sklearn.tree._classes.DecisionTreeRegressor", _R,
     _TREE_SPACE, _NONE, _TREE),
    ("svr", "sklearn.svm._classes.SVR", _R,
     {**_SVM_SPACE, "epsilon": _float(1e-3, 1.0, log=True)}, _NONE, ()),
    ("knn_regressor", "sklearn.neighbors._regression.KNeighborsRegressor", _R,
     _NEIGHBORS_SPACE, _NONE, _NEIGHBORS),
    ("mlp_regressor", "sklearn.neural_network._multilayer_perceptron.MLPRegressor", _R,
     _MLP_SPACE, _PARTIAL, _MLP),
)

# The ensembles that warm_start grows member by member (AdaBoost has no warm_start).
_MEMBERS = {
    "random_forest_classifier": "n_estimators",
    "gradient_boosting_classifier": "n_estimators",
    "hist_gradient_boosting_classifier": "max_iter",
    "extra_trees_classifier": "n_estimators",
    "random_forest_regressor": "n_estimators",
    "gradient_boosting_regressor": "n_estimators",
    "hist_gradient_boosting_regressor": "max_iter",
    "extra_trees_regressor": "n_estimators",
}

ALGORITHMS: dict[str, AlgorithmDefinition] = {
    name: AlgorithmDefinition(
        name=name,
        estimator=estimator,
        task=task,
        search_space=space,
        intermediate_values=progress,
        members=_MEMBERS.get(name),
        trusted_types=trusted,
    )
    for name, estimator, task, space, progress, trusted in _ROWS
}
"""Name -> definition, in the order the CRD lists them."""
