"""Opening the experiment while another Pod of the namespace creates it."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import mlflow
import pytest
from mlflow.exceptions import MlflowException
from mlflow.protos import databricks_pb2

from mlcycle_trainer import tracking
from mlcycle_trainer.errors import InvalidInput


def answers(monkeypatch: pytest.MonkeyPatch, *codes: str) -> list[str]:
    """mlflow.set_experiment fails with `codes` in turn, then finds experiment 7."""
    calls: list[str] = []

    def set_experiment(name: str) -> Any:
        calls.append(name)
        if len(calls) <= len(codes):
            raise MlflowException("no", error_code=getattr(databricks_pb2, codes[len(calls) - 1]))
        return SimpleNamespace(experiment_id="7")

    monkeypatch.setattr(mlflow, "set_experiment", set_experiment)
    return calls


def test_a_concurrent_creator_s_experiment_is_opened_once_its_permission_exists(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = answers(monkeypatch, "RESOURCE_ALREADY_EXISTS", "PERMISSION_DENIED",
                    "PERMISSION_DENIED")
    assert tracking.ensure_experiment("ns/job", pause_s=0) == "7"
    assert len(calls) == 4


def test_a_lasting_refusal_is_reported_after_the_attempts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = answers(monkeypatch, *["PERMISSION_DENIED"] * 6)
    with pytest.raises(InvalidInput, match="PERMISSION_DENIED"):
        tracking.ensure_experiment("ns/job", attempts=6, pause_s=0)
    assert len(calls) == 6


def test_another_error_is_not_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = answers(monkeypatch, "INVALID_PARAMETER_VALUE")
    with pytest.raises(InvalidInput):
        tracking.ensure_experiment("ns/job", pause_s=0)
    assert len(calls) == 1
