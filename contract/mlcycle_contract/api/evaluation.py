"""How a TrainingJob's models are judged: the objective ranking them, the gates to pass."""

from __future__ import annotations

from enum import StrEnum

from pydantic import ConfigDict, Field, model_validator

from mlcycle_contract.api.common import ApiModel, CelRule, cel_list, cel_rules
from mlcycle_contract.api.learning import Direction, GateMetric, Metric, metric_direction

_MINIMIZED_METRICS = cel_list(
    [m.value for m in Metric if metric_direction(m) == Direction.MINIMIZE]
)


class Objective(ApiModel):
    """The metric that ranks models; its direction follows from the metric."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            CelRule(
                rule=f"!has(self.direction) || self.direction == "
                f"(self.metric in {_MINIMIZED_METRICS} ? 'minimize' : 'maximize')",
                message="log_loss, rmse and mae are minimized, the other metrics maximized",
                field_path=".direction",
            )
        )
    )

    metric: Metric = Field(description="Metric to optimize, computed on held-out data.")
    direction: Direction | None = Field(
        default=None, description="maximize or minimize; follows from the metric when unset."
    )

    @model_validator(mode="after")
    def _direction_fits_metric(self) -> Objective:
        if self.direction is not None and self.direction != metric_direction(self.metric):
            raise ValueError("log_loss, rmse and mae are minimized, the other metrics maximized")
        return self


class GateOperator(StrEnum):
    """Comparison of a gate."""

    GE = ">="
    LE = "<="
    GT = ">"
    LT = "<"


class GateBaseline(StrEnum):
    """What a gate compares with instead of a fixed threshold."""

    CHAMPION = "champion"


BASELINE_GATE_MESSAGE = "set exactly one of threshold and baseline"
TOLERANCE_MESSAGE = "tolerance applies to a baseline; set baseline or remove tolerance"


class Gate(ApiModel):
    """A bar the model must clear to be promoted: `metric op threshold`, or `metric op
    baseline` to compare with the model the alias points at now (champion versus
    challenger, on this run's held-out data)."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            CelRule(rule="has(self.threshold) != has(self.baseline)",
                    message=BASELINE_GATE_MESSAGE),
            CelRule(rule="!has(self.tolerance) || has(self.baseline)",
                    message=TOLERANCE_MESSAGE, field_path=".tolerance"),
        )
    )

    metric: GateMetric = Field(description="Predictive or processing metric to test.")
    op: GateOperator = Field(description="Comparison: >=, <=, > or <.")
    threshold: float | None = Field(
        default=None, description="Value the metric is compared with (or set baseline)."
    )
    baseline: GateBaseline | None = Field(
        default=None,
        description="champion: compare with the same metric of the version that "
        "spec.registry.alias points at now, measured on this run's held-out data. With no "
        "such version yet the gate holds.",
    )
    tolerance: float | None = Field(
        default=None,
        ge=0.0,
        description="With baseline: how far the new model may fall behind the champion and "
        "still pass (0 when unset).",
    )

    @model_validator(mode="after")
    def _threshold_or_baseline(self) -> Gate:
        if (self.threshold is None) == (self.baseline is None):
            raise ValueError(BASELINE_GATE_MESSAGE)
        if self.tolerance is not None and self.baseline is None:
            raise ValueError(TOLERANCE_MESSAGE)
        return self


class ChampionScores(ApiModel):
    """The champion a new model was compared with: the version the alias pointed at, and
    its scores on the new model's held-out data."""

    version: int = Field(ge=1, description="The model version the alias pointed at.")
    metrics: dict[str, float] = Field(
        default_factory=dict, description="Its scores on the metrics of the baseline gates."
    )
    error: str | None = Field(
        default=None, max_length=2048, description="Why it could not be scored, if it could not."
    )


class ValidationSpec(ApiModel):
    """How the model is evaluated, and the gates it must pass."""

    holdout_fraction: float | None = Field(
        default=None,
        ge=0.05,
        le=0.5,
        description="Fraction held out for the final evaluation; the Dataset's split when unset.",
    )
    folds: int = Field(
        default=5,
        ge=0,
        le=20,
        json_schema_extra=cel_rules(
            CelRule(
                rule="self == 0 || self >= 2", message="must be 0 (no cross-validation) or 2..20"
            )
        ),
        description="Cross-validation folds on the training data; 0 disables cross-validation.",
    )
    seed: int = Field(
        default=42,
        ge=0,
        le=2**32 - 1,
        description="Random seed of the estimator (its random_state, unless set) and of the "
        "cross-validation folds; the holdout follows the Dataset's spec.split.",
    )
    gates: list[Gate] = Field(
        default_factory=list, max_length=20, description="All must pass for registration."
    )

    @model_validator(mode="after")
    def _folds_not_one(self) -> ValidationSpec:
        if self.folds == 1:
            raise ValueError("folds must be 0 (no cross-validation) or 2..20")
        return self
