"""Hyperparameter search and AutoML settings of a TrainingJob."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import ConfigDict, Field, field_validator, model_validator

from mlcycle_contract.api.common import LIST_SET, ApiModel, CelRule, cel_list, cel_rules
from mlcycle_contract.api.learning import Algorithm, Task, algorithm_task, algorithms_for
from mlcycle_contract.api.parameters import ParameterSpace, ParameterType

MAX_PARAMETERS_PER_ALGORITHM = 20


# Hyperparameter name -> its range, for one algorithm.
AlgorithmSpace = Annotated[
    dict[str, ParameterSpace], Field(max_length=MAX_PARAMETERS_PER_ALGORITHM)
]


class SearchStrategy(StrEnum):
    """How trials are sampled (Optuna samplers)."""

    TPE = "tpe"
    RANDOM = "random"
    GRID = "grid"


class EarlyStopping(ApiModel):
    """Pruning of unpromising trials (Optuna's median pruner over cross-validation folds)."""

    enabled: bool = Field(default=False, description="Prune trials that fall behind the median.")
    min_trials: int = Field(
        default=5, ge=1, le=500, description="Completed trials before pruning starts."
    )


_SAME_TASK_RULE = " || ".join(
    f"self.all(a, a in {cel_list(list(algorithms_for(task)))})" for task in Task
)


class SearchSpec(ApiModel):
    """A hyperparameter search, or AutoML when several algorithms compete."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            CelRule(
                rule="self.strategy != 'grid' || !has(self.space) || self.space.all(a, "
                "self.space[a].all(p, self.space[a][p].type == 'categorical'))",
                message="grid search takes categorical parameters only",
                field_path=".space",
            )
        )
    )

    strategy: SearchStrategy = Field(default=SearchStrategy.TPE, description="Sampler.")
    trials: int = Field(default=20, ge=1, le=500, description="Number of trials.")
    parallelism: int = Field(default=2, ge=1, le=50, description="Trials running at once.")
    space: dict[Algorithm, AlgorithmSpace] | None = Field(
        default=None,
        max_length=len(Algorithm),
        description="Search space: algorithm -> hyperparameter -> range. Unlisted "
        "hyperparameters keep spec.hyperparameters or the estimator's default.",
    )
    early_stopping: EarlyStopping = Field(
        default_factory=EarlyStopping, description="Pruning of unpromising trials."
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
    def _grid_is_categorical(self) -> SearchSpec:
        if self.strategy == SearchStrategy.GRID and self.space is not None:
            for parameters in self.space.values():
                if any(p.type != ParameterType.CATEGORICAL for p in parameters.values()):
                    raise ValueError("grid search takes categorical parameters only")
        return self
