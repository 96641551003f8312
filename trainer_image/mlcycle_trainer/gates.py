"""Validation gates: `metric op threshold`, all of which must hold for promotion."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlcycle_trainer.specs import Gate

COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}


@dataclass(frozen=True)
class GateOutcome:
    """Whether every gate held, and a line for each that did not."""

    passed: bool
    failed: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "failed": self.failed}


def evaluate_gates(gates: Sequence[Gate], metrics: Mapping[str, float]) -> GateOutcome:
    """A gate on a metric that was not measured fails: nothing unmeasured is promoted."""
    failed = []
    for gate in gates:
        value = metrics.get(gate.metric)
        if value is None or math.isnan(value):
            failed.append(f"{gate} (not measured)")
        elif not COMPARISONS[gate.op](value, gate.threshold):
            failed.append(f"{gate} (got {value:.4g})")
    return GateOutcome(passed=not failed, failed=failed)
