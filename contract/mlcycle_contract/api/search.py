"""Hyperparameter search and AutoML settings of a TrainingJob."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import ConfigDict, Field, field_validator, model_validator

from mlcycle_contract.api.common import LIST_SET, ApiModel, CelRule, JsonValue, cel_list, cel_rules
from mlcycle_contract.api.learning import Algorithm, Task, algorithm_task, algorithms_for

MAX_PARAMETERS_PER_ALGORITHM = 20


class ParameterType(StrEnum):
    """How a hyperparameter is sampled."""

    INT = "int"
    FLOAT = "float"
    CATEGORICAL = "categorical"


class ParameterSpace(ApiModel):
    """The range of one hyperparameter: low..high for int and float, choices for categorical."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            # `choices` holds arbitrary JSON, which CEL cannot see: the operator checks it.
            CelRule(
                rule="self.type != 'categorical' || (!has(self.low) && !has(self.high))",
                message="a categorical parameter takes choices, not low/high",
            ),
            CelRule(
                rule="self.type == 'categorical' || "
                "(has(self.low) && has(self.high) && self.low <= self.high)",
                message="an int or float parameter takes low <= high, not choices",
            ),
            CelRule(
                rule="!has(self.log) || !self.log || (has(self.low) && self.low > 0.0)",
                message="a log-scale parameter needs low > 0",
                field_path=".low",
            ),
        )
    )

    type: ParameterType = Field(description="int, float or categorical.")
    low: float | None = Field(default=None, description="Lowest value (int and float).")
    high: float | None = Field(
        default=None, description="Highest value, inclusive (int and float)."
    )
    step: float | None = Field(default=None, gt=0, description="Grid step (int and float).")
    log: bool = Field(default=False, description="Sample on a log scale (int and float).")
    choices: list[JsonValue] | None = Field(
        default=None, min_length=1, max_length=100, description="Values to pick from (categorical)."
    )

    @model_validator(mode="after")
    def _range_fits_type(self) -> ParameterSpace:
        if self.type == ParameterType.CATEGORICAL:
            if self.choices is None or self.low is not None or self.high is not None:
                raise ValueError("a categorical parameter takes choices, not low/high")
            return self
        if self.low is None or self.high is None or self.low > self.high or self.choices:
            raise ValueError("an int or float parameter takes low <= high, not choices")
        if self.log and self.low <= 0:
            raise ValueError("a log-scale parameter needs low > 0")
        if self.type == ParameterType.INT and not (
            self.low.is_integer() and self.high.is_integer()
        ):
            raise ValueError("an int parameter needs integer low and high")
        return self


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
