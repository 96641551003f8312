"""Validation gates: `metric op threshold`, all of which must hold for promotion."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence

from mlcycle_contract.api.evaluation import Gate, GateOperator
from mlcycle_contract.results import GateOutcome

COMPARISONS: dict[GateOperator, Callable[[float, float], bool]] = {
    GateOperator.GE: operator.ge,
    GateOperator.LE: operator.le,
    GateOperator.GT: operator.gt,
    GateOperator.LT: operator.lt,
}


def describe(gate: Gate) -> str:
    return f"{gate.metric} {gate.op} {gate.threshold:g}"


def evaluate_gates(gates: Sequence[Gate], metrics: Mapping[str, float]) -> GateOutcome:
    """A gate on a metric that was not measured fails: nothing unmeasured is promoted."""
    failed = []
    for gate in gates:
        value = metrics.get(gate.metric)
        if value is None or math.isnan(value):
            failed.append(f"{describe(gate)} (not measured)")
        elif not COMPARISONS[gate.op](value, gate.threshold):
            failed.append(f"{describe(gate)} (got {value:.4g})")
    return GateOutcome(passed=not failed, failed=failed)
