"""The range of one hyperparameter: what a search samples, and the algorithm table's defaults."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import ConfigDict, Field, model_validator

from mlcycle_contract.api.common import ApiModel, CelRule, JsonValue, cel_rules


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

    def candidate_values(self) -> list[Any]:
        """The choices, or the two bounds (as ints for an int parameter): the values whose
        validity stands for the whole range."""
        if self.type == ParameterType.CATEGORICAL:
            return list(self.choices or [])
        bounds = [self.low, self.high]
        return [int(b) if self.type == ParameterType.INT else b for b in bounds if b is not None]
