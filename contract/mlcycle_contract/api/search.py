"""Hyperparameter search and AutoML settings of a TrainingJob, and what a search reports.

Trials are sampled and pruned by Optuna. AutoML is `algorithms` without `space`: each
algorithm brings its default space from the algorithm table (`api.algorithms`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import ConfigDict, Field, field_validator, model_validator

from mlcycle_contract.api.algorithms import (
    ALGORITHMS,
    unknown_parameter_problem,
)
from mlcycle_contract.api.common import (
    LIST_SET,
    ApiModel,
    CelRule,
    Duration,
    cel_list,
    cel_rules,
)
from mlcycle_contract.api.learning import Algorithm, Task, algorithm_task, algorithms_for
from mlcycle_contract.api.parameters import ParameterSpace, ParameterType

MAX_PARAMETERS_PER_ALGORITHM = 20
LEADERBOARD_SIZE = 10

# Hyperparameter name -> its range, for one algorithm; an empty space is refused.
AlgorithmSpace = Annotated[
    dict[str, ParameterSpace], Field(min_length=1, max_length=MAX_PARAMETERS_PER_ALGORITHM)
]


class Sampler(StrEnum):
    """How trials are sampled: Optuna's samplers of these names."""

    TPE = "tpe"
    RANDOM = "random"
    GRID = "grid"
    CMAES = "cmaes"
    QMC = "qmc"


class Pruner(StrEnum):
    """How unpromising trials are stopped early: Optuna's pruners of these names."""

    NONE = "none"
    MEDIAN = "median"
    SUCCESSIVE_HALVING = "successive_halving"
    HYPERBAND = "hyperband"


_SAME_TASK_RULE = " || ".join(
    f"self.all(a, a in {cel_list(list(algorithms_for(task)))})" for task in Task
)
_GRID_RULE = (
    "self.sampler != 'grid' || ((!has(self.algorithms) || size(self.algorithms) == 1) && "
    "(!has(self.space) || self.space.all(a, self.space[a].all(p, "
    "self.space[a][p].type == 'categorical' || has(self.space[a][p].step)))))"
)
GRID_MESSAGE = (
    "grid search takes one algorithm whose parameters are categorical or have a step"
)


class SearchSpec(ApiModel):
    """A hyperparameter search, or AutoML when several algorithms compete."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            CelRule(rule=_GRID_RULE, message=GRID_MESSAGE, field_path=".sampler"),
        )
    )

    space: dict[Algorithm, AlgorithmSpace] | None = Field(
        default=None,
        min_length=1,
        max_length=len(Algorithm),
        description="Search space: algorithm -> hyperparameter -> distribution. An algorithm "
        "not listed searches its default space from the algorithm table; unlisted "
        "hyperparameters keep spec.hyperparameters or the estimator's default.",
    )
    algorithms: list[Algorithm] | None = Field(
        default=None,
        min_length=1,
        max_length=len(Algorithm),
        json_schema_extra={
            **LIST_SET,
            **cel_rules(
                CelRule(rule=_SAME_TASK_RULE, message="all algorithms must solve the same task")
            ),
        },
        description="AutoML: algorithms competing in the search (instead of spec.algorithm).",
    )
    sampler: Sampler = Field(
        default=Sampler.TPE,
        description="Optuna sampler: tpe, random, grid, cmaes or qmc. cmaes samples numeric "
        "parameters jointly; a categorical one (AutoML's algorithm) falls back to random.",
    )
    pruner: Pruner = Field(
        default=Pruner.NONE,
        description="Optuna pruner: none, median, successive_halving or hyperband. A forest "
        "or gradient-boosting trial reports its cross-validated score as its models grow (8, "
        "16, 32, ... members, then its own size); other algorithms report their running "
        "cross-validation score after each fold (validation.folds >= 2). The pruner stops a "
        "trial before the rest.",
    )
    max_trials: int = Field(
        default=20, ge=1, le=1000,
        description="Trials to finish (completed, pruned or failed). Raising it continues "
        "the same study.",
    )
    parallelism: int = Field(
        default=1, ge=1, le=20,
        description="Worker Pods, each running one trial at a time, many trials in a row.",
    )
    max_failed_trials: int | None = Field(
        default=None, ge=0, le=1000,
        description="Failed trials tolerated; one more ends the search Failed with the "
        "trials' error. Unset: no limit.",
    )
    timeout: Duration | None = Field(
        default=None,
        description="Wall-clock limit of the search, e.g. 30m: no trial starts after it, and "
        "the best trial so far is trained and registered.",
    )
    goal: float | None = Field(
        default=None,
        description="Stop as soon as a trial's objective reaches this value (at least it "
        "when maximizing, at most it when minimizing).",
    )
    seed: int | None = Field(
        default=None, ge=0, le=2**31 - 1,
        description="Seed of the sampler (worker i uses seed + i), for a reproducible search.",
    )

    @field_validator("algorithms")
    @classmethod
    def _one_task_no_repeats(cls, algorithms: list[Algorithm] | None) -> list[Algorithm] | None:
        if algorithms is None:
            return None
        if len(set(algorithms)) != len(algorithms):
            raise ValueError("algorithms must not repeat")
        if len({algorithm_task(algorithm) for algorithm in algorithms}) > 1:
            raise ValueError("all algorithms must solve the same task")
        return algorithms

    @model_validator(mode="after")
    def _grid_is_discrete(self) -> SearchSpec:
        if self.sampler != Sampler.GRID:
            return self
        if self.algorithms is not None and len(self.algorithms) > 1:
            raise ValueError(GRID_MESSAGE)
        for parameters in (self.space or {}).values():
            if any(p.type != ParameterType.CATEGORICAL and p.step is None
                   for p in parameters.values()):
                raise ValueError(GRID_MESSAGE)
        return self


def effective_space(search: SearchSpec,
                    algorithms: list[Algorithm]) -> dict[str, dict[str, ParameterSpace]]:
    """Algorithm -> its space: the one given in search.space, else the table's default."""
    given = search.space or {}
    return {algorithm.value: given.get(algorithm, ALGORITHMS[algorithm].search_space)
            for algorithm in algorithms}


def search_problem(search: SearchSpec, algorithms: list[Algorithm],
                   cross_validation: bool) -> tuple[str, str] | None:
    """What the CRD schema cannot check: (field path, problem), or None when the search can
    run. Names are checked against the estimator, and every bound and choice against
    scikit-learn's own rules for the parameter's values (a choice of the wrong type fails)."""
    for algorithm, space in effective_space(search, algorithms).items():
        definition = ALGORITHMS[algorithm]
        parameters = definition.parameters()
        for name, parameter in space.items():
            path = f"spec.search.space.{algorithm}.{name}"
            unknown = unknown_parameter_problem(definition, name)
            if unknown is not None:
                return path, unknown
            for value in parameter.candidate_values():
                problem = parameters.value_problem(name, value)
                if problem is not None:
                    return path, f"{value!r} is not a valid value: {problem}"
        if search.sampler == Sampler.GRID and any(
                p.type != ParameterType.CATEGORICAL and p.step is None for p in space.values()):
            return "spec.search.sampler", f"{GRID_MESSAGE}; {algorithm}'s default space is not"
    if search.pruner != Pruner.NONE and not cross_validation:
        return "spec.search.pruner", (
            f"{', '.join(algorithms)} cannot report intermediate values: a trial reports its "
            "running cross-validation score after each fold, and spec.validation.folds is 0; "
            "set folds >= 2 or pruner none")
    return None


class TrialState(StrEnum):
    """How a trial ended, or that it runs."""

    RUNNING = "Running"
    COMPLETE = "Complete"
    PRUNED = "Pruned"
    FAILED = "Failed"


class SearchProgress(ApiModel):
    """Trial counts of the current study."""

    trials: str = Field(max_length=16, description="Finished trials / maxTrials, e.g. 12/30.")
    total: int = Field(ge=0, description="spec.search.maxTrials.")
    completed: int = Field(ge=0, description="Trials that finished with an objective value.")
    running: int = Field(ge=0, description="Trials running now.")
    pruned: int = Field(ge=0, description="Trials stopped early by the pruner.")
    failed: int = Field(ge=0, description="Trials that failed.")

    @property
    def finished(self) -> int:
        return self.completed + self.pruned + self.failed

    @classmethod
    def count(cls, total: int, states: list[TrialState]) -> SearchProgress:
        """The counts of these trial states, out of `total`."""
        completed, running, pruned, failed = (
            states.count(state) for state in (TrialState.COMPLETE, TrialState.RUNNING,
                                              TrialState.PRUNED, TrialState.FAILED))
        return cls(trials=f"{completed + pruned + failed}/{total}", total=total,
                   completed=completed, running=running, pruned=pruned, failed=failed)


class TrialSummary(ApiModel):
    """One trial: its algorithm, hyperparameters and objective value."""

    number: int = Field(ge=0, description="Trial number in the study.")
    algorithm: Algorithm = Field(description="Estimator of the trial.")
    value: float | None = Field(default=None, description="Objective value (cross-validated).")
    state: TrialState = Field(description="Running, Complete, Pruned or Failed.")
    hyperparameters: str = Field(
        default="{}", max_length=4096,
        description="Sampled hyperparameters, a JSON object (one value, so a status update "
        "replaces it whole).",
    )
    run_id: str | None = Field(default=None, max_length=64, description="Its MLflow run.")
