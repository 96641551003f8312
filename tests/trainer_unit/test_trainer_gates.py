"""Gates decide promotion: each failure is reported as `metric op threshold (got value)`."""

from __future__ import annotations

import pytest

from mlcycle_contract.api.evaluation import Gate
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
