"""The parameters of the allow-listed estimators and scikit-learn's rules for their values,
as data: checked here without importing scikit-learn.

`estimator_parameters.json` is exported from scikit-learn's own `get_params()` defaults and
`_parameter_constraints` by `python -m mlcycle_contract.paramgen` (a test fails when the
installed scikit-learn would export something else). A value is valid when one of its
parameter's constraints holds, and a refusal reads as scikit-learn's own
`InvalidParameterError`. The checks evaluate the constraint kinds of
`sklearn.utils._param_validation` these estimators use (the export refuses others) on the
values a spec can hold (JSON or YAML: None, bool, int, float, str, list, dict): such a value
is never an instance of a type defined outside `builtins` and `numbers` (numpy's,
scikit-learn's).
"""

from __future__ import annotations

import builtins
import json
import math
import numbers
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ESTIMATOR_PARAMETERS_FILE = Path(__file__).with_name("estimator_parameters.json")


class _Check(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class IntervalCheck(_Check):
    """A number of a kind between two bounds (None: unbounded on that side)."""

    kind: Literal["interval"] = "interval"
    over: Literal["int", "real", "real_not_int"]
    left: int | float | None
    right: int | float | None
    closed: Literal["left", "right", "both", "neither"]

    def holds(self, value: Any) -> bool:
        if not _is_number_of(self.over, value):
            return False
        if not isinstance(value, numbers.Integral) and math.isnan(value):
            return False
        left = -math.inf if self.left is None else self.left
        right = math.inf if self.right is None else self.right
        above_left = value >= left if self.closed in ("left", "both") else value > left
        below_right = value <= right if self.closed in ("right", "both") else value < right
        return bool(above_left and below_right)


class OptionsCheck(_Check):
    """One of a finite set of values of a type."""

    kind: Literal["options"] = "options"
    type: str
    options: list[Any]

    def holds(self, value: Any) -> bool:
        return _is_instance(value, self.type) and value in self.options


class InstanceCheck(_Check):
    """An instance of a type, named by its module and qualified name."""

    kind: Literal["instance"] = "instance"
    type: str

    def holds(self, value: Any) -> bool:
        return _is_instance(value, self.type)


class NoneCheck(_Check):
    kind: Literal["none"] = "none"

    def holds(self, value: Any) -> bool:
        return value is None


class ArrayLikeCheck(_Check):
    """scikit-learn's `_is_arraylike_not_scalar`: a list or a dict, of the values a spec holds."""

    kind: Literal["array_like"] = "array_like"

    def holds(self, value: Any) -> bool:
        array_like = any(hasattr(value, attribute) for attribute in
                         ("__len__", "shape", "__array__"))
        return array_like and not _is_scalar(value)


class CallableCheck(_Check):
    kind: Literal["callable"] = "callable"

    def holds(self, value: Any) -> bool:
        return callable(value)


class HasMethodsCheck(_Check):
    kind: Literal["has_methods"] = "has_methods"
    methods: list[str]

    def holds(self, value: Any) -> bool:
        return all(callable(getattr(value, method, None)) for method in self.methods)


Check = Annotated[
    IntervalCheck | OptionsCheck | InstanceCheck | NoneCheck | ArrayLikeCheck | CallableCheck
    | HasMethodsCheck,
    Field(discriminator="kind"),
]


class ParameterConstraint(BaseModel):
    """One of scikit-learn's constraints on a parameter: met when any of its checks holds (a
    constraint such as "random_state" is several)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    description: str
    """As scikit-learn words it in its errors."""
    hidden: bool = False
    """Accepted, but left out of the error message (internal or deprecated values)."""
    any_of: list[Check]

    def holds(self, value: Any) -> bool:
        return any(check.holds(value) for check in self.any_of)


class EstimatorParameters(BaseModel):
    """An estimator's parameters: their defaults, and the constraints on their values (a
    parameter without constraints takes any value, as in scikit-learn)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    class_name: str
    defaults: dict[str, Any]
    constraints: dict[str, list[ParameterConstraint]]

    def value_problem(self, name: str, value: Any) -> str | None:
        """None when scikit-learn's parameter validation accepts `value` for the parameter
        `name` (one it has); else the message of scikit-learn's InvalidParameterError."""
        constraints = self.constraints.get(name)
        if constraints is None or any(constraint.holds(value) for constraint in constraints):
            return None
        shown = [c.description for c in constraints if not c.hidden] or [
            c.description for c in constraints]
        allowed = shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"
        return (f"The {name!r} parameter of {self.class_name} must be {allowed}. "
                f"Got {value!r} instead.")


class EstimatorParametersFile(BaseModel):
    """The data file: the scikit-learn release it was exported from, and estimator path ->
    its parameters."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    scikit_learn: str
    estimators: dict[str, EstimatorParameters]


@cache
def estimator_parameters_file() -> EstimatorParametersFile:
    # json, not pydantic's parser: the file holds Infinity (scikit-learn's n_iter_no_change).
    data = json.loads(ESTIMATOR_PARAMETERS_FILE.read_text(encoding="utf-8"))
    return EstimatorParametersFile.model_validate(data)


def estimator_parameters(estimator: str) -> EstimatorParameters:
    """The parameters of the estimator defined at this path (an algorithm table entry's)."""
    return estimator_parameters_file().estimators[estimator]


# numpy.isscalar's scalar types, less numpy's own (no value of a spec is one).
_SCALAR_TYPES = (int, float, complex, bool, bytes, str, memoryview)


def _is_scalar(value: Any) -> bool:
    return type(value) in _SCALAR_TYPES or isinstance(value, numbers.Number)


def _is_number_of(kind: str, value: Any) -> bool:
    if kind == "int":
        return isinstance(value, numbers.Integral)
    if kind == "real":
        return isinstance(value, numbers.Real)
    return isinstance(value, float)  # scikit-learn's RealNotInt registers float alone


def _is_instance(value: Any, type_name: str) -> bool:
    module, _, name = type_name.rpartition(".")
    namespace = {"builtins": builtins, "numbers": numbers}.get(module)
    cls = getattr(namespace, name, None) if namespace is not None else None
    return isinstance(cls, type) and isinstance(value, cls)
