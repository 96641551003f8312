"""The search checks only the operator can make (they need the estimators): each bad input
is named by its field, and the AutoML default spaces of the algorithm table pass them."""

from __future__ import annotations

from typing import Any

import pytest

from mlcycle_contract.api.learning import Algorithm
from mlcycle_contract.api.search import (
    SearchProgress,
    SearchSpec,
    TrialState,
    effective_space,
    search_problem,
)


def _problem(search: dict[str, Any], algorithms: list[str],
             cross_validation: bool = True) -> tuple[str, str] | None:
    return search_problem(SearchSpec.model_validate(search),
                          [Algorithm(a) for a in algorithms], cross_validation)


@pytest.mark.parametrize("algorithm", list(Algorithm))
def test_every_default_space_of_the_table_is_valid(algorithm: Algorithm) -> None:
    assert _problem({}, [algorithm.value]) is None


def test_automl_takes_each_algorithm_s_default_space_unless_given() -> None:
    search = SearchSpec.model_validate(
        {"algorithms": ["svc", "gaussian_nb"],
         "space": {"svc": {"C": {"type": "float", "low": 1, "high": 2}}}})
    space = effective_space(search, [Algorithm.SVC, Algorithm.GAUSSIAN_NB])
    assert list(space["svc"]) == ["C"]
    assert list(space["gaussian_nb"]) == ["var_smoothing"]


@pytest.mark.parametrize(("search", "algorithms", "field", "words"), [
    # An unknown parameter name for the algorithm.
    ({"space": {"svc": {"n_trees": {"type": "int", "low": 1, "high": 5}}}}, ["svc"],
     "spec.search.space.svc.n_trees", "svc has no parameter 'n_trees'"),
    # A categorical value of the wrong type.
    ({"space": {"knn_classifier": {"weights": {"type": "categorical",
                                               "choices": ["uniform", 3]}}}},
     ["knn_classifier"], "spec.search.space.knn_classifier.weights", "3 is not a valid value"),
    # A bound scikit-learn refuses.
    ({"space": {"random_forest_classifier": {"n_estimators": {"type": "int", "low": 0,
                                                              "high": 10}}}},
     ["random_forest_classifier"], "spec.search.space.random_forest_classifier.n_estimators",
     "0 is not a valid value"),
])
def test_a_bad_space_is_named_by_its_field(search: dict[str, Any], algorithms: list[str],
                                           field: str, words: str) -> None:
    problem = _problem(search, algorithms)
    assert problem is not None and problem[0] == field and words in problem[1], problem


def test_a_pruner_needs_intermediate_values() -> None:
    # A trial reports its running score after each cross-validation fold; with no folds,
    # no algorithm reports anything to prune on.
    assert _problem({"pruner": "median"}, ["svc"]) is None
    problem = _problem({"pruner": "median"}, ["gradient_boosting_classifier", "svc"], False)
    assert problem is not None and problem[0] == "spec.search.pruner"
    assert "svc cannot report intermediate values" in problem[1]


def test_grid_refuses_a_continuous_default_space() -> None:
    problem = _problem({"sampler": "grid"}, ["svc"])
    assert problem is not None and problem[0] == "spec.search.sampler"
    assert _problem({"sampler": "grid", "space": {"svc": {"C": {
        "type": "float", "low": 1, "high": 3, "step": 1}}}}, ["svc"]) is None


def test_progress_counts_the_trial_states() -> None:
    states = [TrialState.COMPLETE] * 3 + [TrialState.PRUNED, TrialState.FAILED,
                                          TrialState.RUNNING]
    progress = SearchProgress.count(30, states)
    assert (progress.trials, progress.finished, progress.running) == ("5/30", 5, 1)
