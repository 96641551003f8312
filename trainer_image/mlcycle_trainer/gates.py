"""Validation gates: `metric op threshold` or `metric op champion`, all of which must hold
for promotion."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping, Sequence

from mlcycle_contract.api.evaluation import ChampionScores, Gate, GateOperator
from mlcycle_contract.results import GateOutcome

COMPARISONS: dict[GateOperator, Callable[[float, float], bool]] = {
    GateOperator.GE: operator.ge,
    GateOperator.LE: operator.le,
    GateOperator.GT: operator.gt,
    GateOperator.LT: operator.lt,
}
HIGHER_IS_BETTER = (GateOperator.GE, GateOperator.GT)


def bar(gate: Gate, champion: ChampionScores | None) -> float | None:
    """The value the metric is compared with: the threshold, or the champion's score less
    the tolerance (plus it, for a metric where lower is better); None if unmeasured."""
    if gate.baseline is None:
        return gate.threshold
    score = champion.metrics.get(gate.metric) if champion is not None else None
    if score is None:
        return None
    slack = gate.tolerance or 0.0
    return score - slack if gate.op in HIGHER_IS_BETTER else score + slack


def describe(gate: Gate, champion: ChampionScores | None = None) -> str:
    if gate.baseline is None:
        return f"{gate.metric} {gate.op} {gate.threshold:g}"
    if champion is None:
        return f"{gate.metric} {gate.op} {gate.baseline}"
    score = champion.metrics.get(gate.metric)
    against = f"champion v{champion.version}" + (f" {score:.4g}" if score is not None else "")
    if gate.tolerance:
        against += f" {'-' if gate.op in HIGHER_IS_BETTER else '+'} {gate.tolerance:g}"
    return f"{gate.metric} {gate.op} {against}"


def evaluate_gates(
    gates: Sequence[Gate], metrics: Mapping[str, float], champion: ChampionScores | None = None
) -> GateOutcome:
    """A gate on a metric that was not measured fails: nothing unmeasured is promoted. A
    baseline gate holds when there is no champion yet, and fails when the champion could
    not be scored."""
    failed = []
    for gate in gates:
        if gate.baseline is not None and champion is None:
            continue
        value, target = metrics.get(gate.metric), bar(gate, champion)
        if value is None or math.isnan(value):
            failed.append(f"{describe(gate, champion)} (not measured)")
        elif target is None:
            why = champion.error if champion is not None and champion.error else "not measured"
            failed.append(f"{describe(gate, champion)} (champion {why})")
        elif not COMPARISONS[gate.op](value, target):
            failed.append(f"{describe(gate, champion)} (got {value:.4g})")
    return GateOutcome(passed=not failed, failed=failed)
