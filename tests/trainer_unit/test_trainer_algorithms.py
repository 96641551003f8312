"""The algorithm table: each entry is a real estimator of its task whose declared search space
and progress reporting hold, hyperparameters are checked before any data is read, and every
model loads in the model server, which trusts only the types the table lists."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import is_classifier, is_regressor

from mlcycle_contract.api.algorithms import (
    ALGORITHMS,
    IntermediateValues,
    Task,
    hyperparameter_problem,
)
from mlcycle_contract.api.learning import Algorithm
from mlcycle_contract.api.parameters import ParameterType
from mlcycle_contract.api.trainingjob import Scaling
from mlcycle_trainer.algorithms import build_estimator, lookup
from mlcycle_trainer.errors import InvalidInput
from mlcycle_trainer.preprocessing import build_pipeline, features_and_target
from mlcycle_trainer.serialization import serialize


def test_the_api_enum_is_the_table() -> None:
    assert [algorithm.value for algorithm in Algorithm] == list(ALGORITHMS)


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_every_entry_is_a_scikit_learn_estimator_of_its_task(name: str) -> None:
    algorithm = ALGORITHMS[name]
    estimator = algorithm.estimator_class()()
    assert type(estimator).__module__.startswith("sklearn.")
    assert (is_classifier if algorithm.task == Task.CLASSIFICATION else is_regressor)(estimator)


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_the_declared_progress_reporting_exists(name: str) -> None:
    algorithm = ALGORITHMS[name]
    estimator = algorithm.estimator_class()
    has_it = {
        IntermediateValues.NONE: True,
        IntermediateValues.STAGED_PREDICT: hasattr(estimator, "staged_predict"),
        IntermediateValues.PARTIAL_FIT: hasattr(estimator, "partial_fit"),
        IntermediateValues.WARM_START: "warm_start" in algorithm.parameter_names(),
    }
    assert has_it[algorithm.intermediate_values]


def test_every_ensemble_that_warm_start_grows_declares_its_members() -> None:
    growable = {name for name, algorithm in ALGORITHMS.items()
                if {"warm_start", "n_estimators"} <= set(algorithm.parameter_names())}
    declared = {name for name, algorithm in ALGORITHMS.items() if algorithm.members}
    assert growable <= declared
    for name in declared:
        assert ALGORITHMS[name].members in ALGORITHMS[name].parameter_names()


@pytest.mark.parametrize("name", sorted(n for n, a in ALGORITHMS.items() if a.members))
def test_an_ensemble_grown_in_place_is_the_one_a_single_fit_makes(name: str) -> None:
    """What a pruned search relies on: growing `members` with warm_start keeps the members
    fitted so far and ends in the model one fit of that size makes."""
    algorithm = ALGORITHMS[name]
    assert algorithm.members is not None
    x, y = features_and_target(small_frame(algorithm.task), "y", algorithm.task)
    x = x[["x1", "x2"]]
    unseen = x + np.random.default_rng(1).normal(scale=0.5, size=x.shape)
    one_fit = build_estimator(algorithm, {algorithm.members: 12}, seed=0).fit(x, y)
    grown = build_estimator(algorithm, {algorithm.members: 4, "warm_start": True}, seed=0)
    grown.fit(x, y)
    grown.set_params(**{algorithm.members: 12}).fit(x, y)
    assert np.allclose(grown.predict(unseen), one_fit.predict(unseen))


def space_values(name: str) -> list[dict[str, Any]]:
    """One hyperparameter setting per bound and per choice of the default search space."""
    settings: list[dict[str, Any]] = []
    for parameter, space in ALGORITHMS[name].search_space.items():
        if space.type == ParameterType.CATEGORICAL:
            settings += [{parameter: choice} for choice in space.choices or []]
        else:
            assert space.low is not None and space.high is not None
            cast = int if space.type == ParameterType.INT else float
            settings += [{parameter: cast(space.low)}, {parameter: cast(space.high)}]
    return settings


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_the_default_search_space_is_accepted_by_the_estimator(name: str) -> None:
    assert ALGORITHMS[name].search_space
    for setting in space_values(name):
        assert hyperparameter_problem(ALGORITHMS[name], setting) is None, setting


def test_a_search_runs_as_single_trainings() -> None:
    with pytest.raises(InvalidInput) as excinfo:
        lookup(None)
    assert (excinfo.value.reason, excinfo.value.field) == ("InvalidSpec", "spec.algorithm")


def test_an_unknown_hyperparameter_is_named_with_the_valid_ones() -> None:
    with pytest.raises(InvalidInput) as excinfo:
        build_estimator(lookup(Algorithm("random_forest_classifier")), {"n_estimator": 10}, 1)
    assert excinfo.value.reason == "InvalidHyperparameter"
    message = excinfo.value.message
    assert "'n_estimator'" in message
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
        build_estimator(lookup(Algorithm(algorithm)), hyperparameters, seed=1)
    assert excinfo.value.reason == "InvalidHyperparameter"
    assert next(iter(hyperparameters)) in excinfo.value.message


def test_random_state_defaults_to_the_seed_but_an_explicit_one_wins() -> None:
    algorithm = lookup(Algorithm("random_forest_classifier"))
    assert build_estimator(algorithm, {}, seed=7).get_params()["random_state"] == 7
    assert build_estimator(algorithm, {"random_state": 3}, seed=7).get_params()["random_state"] == 3
    knn = build_estimator(lookup(Algorithm("knn_classifier")), {}, seed=7)
    assert "random_state" not in knn.get_params()


def small_frame(task: Task) -> pd.DataFrame:
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
    classes = (frame["x1"] > 0).astype("int64")
    frame["y"] = classes if task == Task.CLASSIFICATION else frame["x1"] * 2.0
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


def categorical_settings(name: str) -> list[dict[str, Any]]:
    """The fast setting, and it with each choice of the search space (a choice may put
    other types into the model, e.g. another distance metric)."""
    categorical = [
        setting
        for setting in space_values(name)
        if ALGORITHMS[name].search_space[next(iter(setting))].type == ParameterType.CATEGORICAL
    ]
    return [FAST.get(name, {}), *({**FAST.get(name, {}), **setting} for setting in categorical)]


# A fresh interpreter loads every file as the model server does (`load_skops`: skops trusting
# no estimator by itself, only the table's types) and predicts the pickled frame beside it.
SERVER_LOADS = """
import json, sys
from pathlib import Path
import pandas as pd
from mlcycle_serving.skops_loading import UnsafeModel, load_skops
answers = {}
for model in sorted(Path(sys.argv[1]).glob("*.skops")):
    frame = pd.read_pickle(model.with_suffix(".pkl"))
    try:
        answers[model.stem] = [float(v) for v in load_skops(model).predict(frame)]
    except UnsafeModel as refused:
        answers[model.stem] = str(refused)
print(json.dumps(answers))
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[list[float], Any]]:
    """For every algorithm and setting (`<name>-<n>`): what the fitted pipeline predicts,
    and what a fresh server process that loaded its skops file answers."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    folder = tmp_path_factory.mktemp("served")
    expected: dict[str, list[float]] = {}
    for name, algorithm in ALGORITHMS.items():
        x, y = features_and_target(small_frame(algorithm.task), "y", algorithm.task)
        for number, hyperparameters in enumerate(categorical_settings(name)):
            estimator = build_estimator(algorithm, hyperparameters, seed=0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                pipeline = build_pipeline(estimator, x, Scaling.STANDARD, one_hot_encode=True)
                pipeline.fit(x, y)
            data, trusted = serialize(pipeline, algorithm)
            assert trusted == algorithm.skops_trusted_types()
            key = f"{name}-{number}"
            (folder / f"{key}.skops").write_bytes(data)
            x.to_pickle(folder / f"{key}.pkl")
            expected[key] = [float(v) for v in pipeline.predict(x)]
    done = subprocess.run(
        [sys.executable, "-c", SERVER_LOADS, str(folder)],
        capture_output=True, text=True, timeout=600, check=True,
    )
    answers = json.loads(done.stdout)
    return {key: (value, answers.get(key)) for key, value in expected.items()}


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_the_model_server_loads_every_algorithm_trusting_only_the_tables_types(
    name: str, served: dict[str, tuple[list[float], Any]]
) -> None:
    """At each categorical choice of its space, since a choice may put other types into the
    model (another distance metric), and with the trainer's preprocessing around it."""
    mine = {key: pair for key, pair in served.items() if key.rpartition("-")[0] == name}
    assert len(mine) == len(categorical_settings(name))
    for key, (predicted, answered) in mine.items():
        assert answered == predicted, key


def test_each_estimator_is_named_as_skops_names_it_in_a_saved_model() -> None:
    from skops.io._utils import get_type_name

    for algorithm in ALGORITHMS.values():
        assert get_type_name(algorithm.estimator_class()) == algorithm.estimator


# A fresh interpreter: skops is first imported as the trainer imports it.
TRAINER_SERIALIZES = """
import numpy as np
from sklearn.naive_bayes import GaussianNB
from sklearn.pipeline import Pipeline
from mlcycle_contract.api.algorithms import ALGORITHMS
from mlcycle_trainer.errors import InvalidInput
from mlcycle_trainer.serialization import serialize
model = GaussianNB().fit(np.array([[0.0], [1.0]]), [0, 1])
try:
    serialize(Pipeline([("model", model)]), ALGORITHMS["random_forest_classifier"])
except InvalidInput as refused:
    print(refused.reason, refused.message)
"""


def test_the_trainer_refuses_an_estimator_the_table_does_not_list_as_the_server_would() -> None:
    """skops by itself trusts every scikit-learn estimator; the trainer, like the model
    server, trusts only the table's types, so such a model is refused where it is made."""
    done = subprocess.run([sys.executable, "-c", TRAINER_SERIALIZES],
                          capture_output=True, text=True, timeout=300, check=True)
    assert done.stdout.startswith("ModelNotSerializable ")
    assert "sklearn.naive_bayes.GaussianNB" in done.stdout
