"""The allow-list: names, tasks, hyperparameter checks, and that every model round-trips
through skops with only scikit-learn types trusted."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.base import is_classifier, is_regressor

from mlcycle_contract.api.learning import CLASSIFIERS, Algorithm
from mlcycle_trainer.algorithms import ALGORITHMS, build_estimator, lookup
from mlcycle_trainer.errors import InvalidInput
from mlcycle_trainer.preprocessing import build_pipeline, features_and_target
from mlcycle_trainer.serialization import serialize
from mlcycle_trainer.vocabulary import CLASSIFICATION, REGRESSION


def test_the_allow_list_matches_the_operator_names_and_tasks() -> None:
    assert set(ALGORITHMS) == {algorithm.value for algorithm in Algorithm}
    for algorithm in Algorithm:
        expected = CLASSIFICATION if algorithm in CLASSIFIERS else REGRESSION
        assert ALGORITHMS[algorithm.value].task == expected, algorithm


def test_every_entry_is_a_scikit_learn_estimator_of_its_task() -> None:
    for name, algorithm in ALGORITHMS.items():
        assert algorithm.estimator.__module__.startswith("sklearn."), name
        check = is_classifier if algorithm.task == CLASSIFICATION else is_regressor
        assert check(algorithm.estimator()), name


def test_an_unknown_algorithm_lists_the_allowed_ones() -> None:
    with pytest.raises(InvalidInput) as excinfo:
        lookup("os.system")
    assert excinfo.value.reason == "UnknownAlgorithm"
    assert "random_forest_classifier" in excinfo.value.message


def test_an_unknown_hyperparameter_is_named_with_the_valid_ones() -> None:
    with pytest.raises(InvalidInput) as excinfo:
        build_estimator(lookup("random_forest_classifier"), {"n_estimator": 10}, seed=1)
    assert excinfo.value.reason == "UnknownHyperparameter"
    message = excinfo.value.message
    assert "'n_estimator'" in message or "n_estimator is" in message
    assert "n_estimators" in message and "max_depth" in message


@pytest.mark.parametrize(
    ("algorithm", "hyperparameters"),
    [
        ("random_forest_classifier", {"n_estimators": "many"}),
        ("random_forest_classifier", {"n_estimators": 0}),
        ("logistic_regression", {"C": -1.0}),
        ("svc", {"kernel": "quantum"}),
        ("ridge", {"alpha": "big"}),
    ],
)
def test_a_wrong_value_is_refused_before_any_data_is_read(
    algorithm: str, hyperparameters: dict[str, object]
) -> None:
    with pytest.raises(InvalidInput) as excinfo:
        build_estimator(lookup(algorithm), hyperparameters, seed=1)
    assert excinfo.value.reason == "InvalidHyperparameter"
    assert next(iter(hyperparameters)) in excinfo.value.message


def test_random_state_defaults_to_the_seed_but_an_explicit_one_wins() -> None:
    algorithm = lookup("random_forest_classifier")
    assert build_estimator(algorithm, {}, seed=7).get_params()["random_state"] == 7
    assert build_estimator(algorithm, {"random_state": 3}, seed=7).get_params()["random_state"] == 3
    assert "random_state" not in build_estimator(lookup("knn_classifier"), {}, seed=7).get_params()


def small_frame(task: str) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = 60
    frame = pd.DataFrame(
        {
            "x1": rng.normal(size=rows),
            "x2": rng.integers(0, 5, size=rows),
            "color": pd.array(rng.choice(["red", "green", None], size=rows), dtype="string"),
            "flag": rng.integers(0, 2, size=rows).astype(bool),
        }
    )
    frame["y"] = (frame["x1"] > 0).astype("int64") if task == CLASSIFICATION else frame["x1"] * 2.0
    return frame


# Small settings, so every estimator fits in a moment.
FAST = {
    "random_forest_classifier": {"n_estimators": 5},
    "extra_trees_classifier": {"n_estimators": 5},
    "gradient_boosting_classifier": {"n_estimators": 5},
    "hist_gradient_boosting_classifier": {"max_iter": 5},
    "mlp_classifier": {"max_iter": 20, "hidden_layer_sizes": [8]},
    "random_forest_regressor": {"n_estimators": 5},
    "extra_trees_regressor": {"n_estimators": 5},
    "gradient_boosting_regressor": {"n_estimators": 5},
    "hist_gradient_boosting_regressor": {"max_iter": 5},
    "mlp_regressor": {"max_iter": 20, "hidden_layer_sizes": [8]},
}


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_every_algorithm_fits_and_loads_back_trusting_only_sklearn_types(name: str) -> None:
    algorithm = ALGORITHMS[name]
    x, y = features_and_target(small_frame(algorithm.task), "y", algorithm.task)
    estimator = build_estimator(algorithm, FAST.get(name, {}), seed=0)
    pipeline = build_pipeline(estimator, x, "standard", one_hot_encode=True).fit(x, y)
    data, trusted = serialize(pipeline)
    assert all(t.startswith("sklearn.") or t == "numpy.dtype" for t in trusted)
    loaded = skops.io.loads(data, trusted=trusted)
    np.testing.assert_array_equal(loaded.predict(x), pipeline.predict(x))
