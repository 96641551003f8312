"""The estimators' parameters as data (`api.estimator_parameters`), which the operator checks
specs against without scikit-learn: the file is what the installed scikit-learn exports,
and its checks accept exactly the values scikit-learn's own parameter validation accepts,
refusing the others in scikit-learn's words."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from sklearn.utils._param_validation import InvalidParameterError

from mlcycle_contract import paramgen
from mlcycle_contract.api.algorithms import ALGORITHMS, AlgorithmDefinition, hyperparameter_problem
from mlcycle_contract.api.estimator_parameters import (
    ESTIMATOR_PARAMETERS_FILE,
    IntervalCheck,
    OptionsCheck,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

# Values of every JSON and YAML type, at and around the usual bounds.
GENERIC_VALUES: list[Any] = [
    None, True, False, 0, 1, -1, 2, 3, 100, 2**32 - 1, 2**32, 0.0, 1e-12, 0.5, 1.0, 1.5,
    -0.5, 2.0, 1e10, math.inf, -math.inf, math.nan, "", "x", "auto", "sqrt", "balanced",
    "none", "None", "true", "1", [], [1], [64, 32], [0.5], ["a"], {}, {"0": 1.0}, {"a": "b"},
]

# Hyperparameters the end-to-end tests apply (tests/e2e), by algorithm.
E2E_VALUES: dict[str, list[dict[str, Any]]] = {
    "random_forest_classifier": [{"n_estimators": 400, "random_state": 0},
                                 {"n_estimators": 60}, {"n_estimators": 30},
                                 {"n_estimators": 1500}, {"n_estimators": 20},
                                 {"n_estimators": "many"}],
    "decision_tree_classifier": [{"max_depth": 3, "random_state": 0}, {"max_depth": 1}],
    "logistic_regression": [{"C": 0.01}, {"C": 100.0}, {"tol": 1e-5}, {"tol": 1e-2}],
    "knn_classifier": [{"n_neighbors": 1}, {"n_neighbors": 9}, {"weights": 1},
                       {"weights": 2}, {"n_neighbors": 7, "weights": "distance"}],
    "svc": [{"kernel": "precomputed"}],
}


def example_values() -> dict[str, list[dict[str, Any]]]:
    """Each example TrainingJob's hyperparameters and search-space bounds and choices."""
    found: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(EXAMPLES.glob("*/trainingjob.yaml")):
        spec = yaml.safe_load(path.read_text())["spec"]
        if spec.get("algorithm") and spec.get("hyperparameters"):
            found.setdefault(spec["algorithm"], []).append(spec["hyperparameters"])
        for algorithm, space in ((spec.get("search") or {}).get("space") or {}).items():
            for name, parameter in space.items():
                values = parameter.get("choices") or [parameter["low"], parameter["high"]]
                found.setdefault(algorithm, []).extend({name: v} for v in values)
    return found


def boundary_values(algorithm: AlgorithmDefinition, name: str) -> list[Any]:
    """Each option of the parameter's constraints, and each bound and its neighbours."""
    values: list[Any] = []
    for constraint in algorithm.parameters().constraints.get(name, []):
        for check in constraint.any_of:
            if isinstance(check, OptionsCheck):
                values += [*check.options, *(f"{o}x" for o in check.options
                                              if isinstance(o, str))]
            if isinstance(check, IntervalCheck):
                for bound in (check.left, check.right):
                    if bound is not None and math.isfinite(bound):
                        values += [bound, float(bound), bound + 1, bound - 1,
                                   bound + 1e-9, bound - 1e-9, int(bound)]
    return values


def space_values(algorithm: AlgorithmDefinition) -> list[dict[str, Any]]:
    return [{name: value} for name, space in algorithm.search_space.items()
            for value in space.candidate_values()]


def scikit_learn_problem(algorithm: AlgorithmDefinition, name: str, value: Any) -> str | None:
    try:
        algorithm.estimator_class()(**{name: value})._validate_params()
    except InvalidParameterError as error:
        return str(error)
    return None


def same_message(ours: str | None, theirs: str | None) -> bool:
    """Equal, but for the order of a set's options, which changes between processes."""
    def canonical(message: str | None) -> str | None:
        return None if message is None else re.sub(
            r"\{([^{}]*)\}", lambda m: "{" + ", ".join(sorted(m[1].split(", "))) + "}", message)
    return canonical(ours) == canonical(theirs)


def test_the_file_is_what_the_installed_scikit_learn_exports() -> None:
    """After a scikit-learn upgrade that changes a constraint, this fails until
    `python -m mlcycle_contract.paramgen` regenerates the file."""
    assert ESTIMATOR_PARAMETERS_FILE.read_text(encoding="utf-8") == paramgen.render(
        paramgen.export())
    assert paramgen.main(["--check"]) == 0


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_the_parameters_are_the_estimator_s(name: str) -> None:
    algorithm = ALGORITHMS[name]
    assert algorithm.parameter_names() == sorted(algorithm.estimator_class()().get_params())


@pytest.mark.parametrize("name", sorted(ALGORITHMS))
def test_a_value_is_accepted_exactly_when_scikit_learn_accepts_it(name: str) -> None:
    algorithm = ALGORITHMS[name]
    parameters = algorithm.parameters()
    settings = [{parameter: value} for parameter in algorithm.parameter_names()
                for value in [*GENERIC_VALUES, *boundary_values(algorithm, parameter)]]
    settings += space_values(algorithm) + E2E_VALUES.get(name, [])
    settings += example_values().get(name, [])
    refused = 0
    for setting in settings:
        for parameter, value in setting.items():
            theirs = scikit_learn_problem(algorithm, parameter, value)
            ours = parameters.value_problem(parameter, value)
            assert same_message(ours, theirs), (parameter, value, ours, theirs)
            refused += theirs is not None
    assert 0 < refused < len(settings)


def test_the_defaults_of_the_search_spaces_and_examples_are_accepted() -> None:
    for name, algorithm in ALGORITHMS.items():
        for setting in [*space_values(algorithm), *example_values().get(name, [])]:
            assert hyperparameter_problem(algorithm, setting) is None, (name, setting)


def test_several_bad_values_are_refused_at_the_one_scikit_learn_names_first() -> None:
    algorithm = ALGORITHMS["random_forest_classifier"]
    hyperparameters = {"n_estimators": 0, "criterion": "x", "max_depth": -1}
    with pytest.raises(InvalidParameterError) as error:
        algorithm.estimator_class()(**hyperparameters)._validate_params()
    problem = hyperparameter_problem(algorithm, hyperparameters)
    assert problem is not None
    field, _, message = problem.partition(": ")
    assert field == "spec.hyperparameters.criterion"
    assert same_message(message, str(error.value))


def test_a_refusal_names_the_field_and_what_is_allowed() -> None:
    problem = hyperparameter_problem(ALGORITHMS["svc"], {"kernel": "quantum"})
    assert problem == (
        "spec.hyperparameters.kernel: The 'kernel' parameter of SVC must be a str among "
        "{'linear', 'poly', 'precomputed', 'rbf', 'sigmoid'} or a callable. "
        "Got 'quantum' instead.")
    unknown = hyperparameter_problem(ALGORITHMS["svc"], {"kernal": "rbf"})
    assert unknown is not None and unknown.startswith(
        "spec.hyperparameters.kernal: svc has no parameter 'kernal'; valid parameters are C, ")
