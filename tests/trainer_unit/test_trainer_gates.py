"""Gates decide promotion: each failure is reported as `metric op threshold (got value)`,
or, against the champion, `metric op champion vN score (got value)`."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from mlcycle_contract.api.evaluation import ChampionScores, Gate
from mlcycle_trainer.gates import evaluate_gates


def gate(metric: str, op: str, threshold: float) -> Gate:
    return Gate.model_validate({"metric": metric, "op": op, "threshold": threshold})


def test_no_gates_pass() -> None:
    outcome = evaluate_gates([], {"accuracy": 0.1})
    assert outcome.passed and outcome.failed == []
    assert outcome.to_wire() == {"passed": True, "failed": []}


def test_a_failed_gate_says_what_it_got() -> None:
    outcome = evaluate_gates([gate("accuracy", ">=", 0.99)], {"accuracy": 0.95})
    assert not outcome.passed
    assert outcome.failed == ["accuracy >= 0.99 (got 0.95)"]


@pytest.mark.parametrize(
    ("op", "value", "passes"),
    [
        (">=", 0.9, True),
        (">=", 0.89, False),
        (">", 0.9, False),
        (">", 0.91, True),
        ("<=", 0.9, True),
        ("<=", 0.91, False),
        ("<", 0.9, False),
        ("<", 0.89, True),
    ],
)
def test_each_operator_compares_as_written(op: str, value: float, passes: bool) -> None:
    assert evaluate_gates([gate("accuracy", op, 0.9)], {"accuracy": value}).passed is passes


def test_all_gates_must_pass_and_every_failure_is_listed() -> None:
    gates = [
        gate("accuracy", ">=", 0.9),
        gate("latency_p99_ms", "<", 10),
        gate("model_size_bytes", "<=", 1e6),
    ]
    outcome = evaluate_gates(
        gates, {"accuracy": 0.95, "latency_p99_ms": 12.5, "model_size_bytes": 2e6}
    )
    assert not outcome.passed
    assert outcome.failed == [
        "latency_p99_ms < 10 (got 12.5)",
        "model_size_bytes <= 1e+06 (got 2e+06)",
    ]


def test_a_gate_on_an_unmeasured_metric_fails() -> None:
    outcome = evaluate_gates([gate("roc_auc", ">=", 0.8)], {"accuracy": 1.0})
    assert outcome.failed == ["roc_auc >= 0.8 (not measured)"]
    assert evaluate_gates([gate("r2", ">", 0)], {"r2": float("nan")}).failed == [
        "r2 > 0 (not measured)"
    ]


def champion_gate(metric: str, op: str, tolerance: float | None = None) -> Gate:
    return Gate.model_validate({"metric": metric, "op": op, "baseline": "champion",
                                **({} if tolerance is None else {"tolerance": tolerance})})


CHAMPION = ChampionScores(version=3, metrics={"accuracy": 0.9, "latency_p99_ms": 2.0})


def test_a_challenger_must_match_the_champion_on_the_same_rows() -> None:
    gates = [champion_gate("accuracy", ">=")]
    assert evaluate_gates(gates, {"accuracy": 0.9}, CHAMPION).passed
    outcome = evaluate_gates(gates, {"accuracy": 0.85}, CHAMPION)
    assert outcome.failed == ["accuracy >= champion v3 0.9 (got 0.85)"]


def test_tolerance_lets_a_challenger_fall_behind_by_that_much_in_the_metric_s_direction() -> None:
    assert evaluate_gates([champion_gate("accuracy", ">=", 0.05)], {"accuracy": 0.85},
                          CHAMPION).passed
    assert not evaluate_gates([champion_gate("accuracy", ">", 0.05)], {"accuracy": 0.85},
                              CHAMPION).passed
    slower = evaluate_gates([champion_gate("latency_p99_ms", "<=", 0.5)],
                            {"latency_p99_ms": 2.6}, CHAMPION)
    assert slower.failed == ["latency_p99_ms <= champion v3 2 + 0.5 (got 2.6)"]
    assert evaluate_gates([champion_gate("latency_p99_ms", "<=", 0.5)],
                          {"latency_p99_ms": 2.5}, CHAMPION).passed


def test_with_no_champion_yet_a_baseline_gate_holds_but_a_threshold_gate_still_counts() -> None:
    gates = [champion_gate("accuracy", ">="), gate("accuracy", ">=", 0.95)]
    assert evaluate_gates(gates, {"accuracy": 0.9}, None).failed == [
        "accuracy >= 0.95 (got 0.9)"]


def test_a_champion_that_could_not_be_scored_keeps_the_alias() -> None:
    broken = ChampionScores(version=2, error="v2 could not be scored: KeyError: 'petal'")
    outcome = evaluate_gates([champion_gate("accuracy", ">=")], {"accuracy": 1.0}, broken)
    assert outcome.failed == [
        "accuracy >= champion v2 (champion v2 could not be scored: KeyError: 'petal')"]


@pytest.mark.parametrize(("document", "message"), [
    ({"threshold": 0.9, "baseline": "champion"}, "set exactly one of threshold and baseline"),
    ({}, "set exactly one of threshold and baseline"),
    ({"threshold": 0.9, "tolerance": 0.1}, "tolerance applies to a baseline"),
    ({"baseline": "champion", "tolerance": -0.01}, "greater than or equal to 0"),
    ({"baseline": "incumbent"}, "'champion'"),
])
def test_a_malformed_gate_is_refused_naming_the_problem(document: dict[str, object],
                                                        message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Gate.model_validate({"metric": "accuracy", "op": ">=", **document})
