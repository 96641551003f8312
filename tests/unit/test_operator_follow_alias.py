"""What a ModelDeployment's timer does for its alias, with the shared board: resolve and
roll out only when the alias's version moved or the spec changed; at rest nothing, and
every RESYNC_SECONDS a re-apply that asks MLflow nothing."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from mlcycle.alias_board import AliasKey, SharedBoard
from mlcycle.reconcile import modeldeployment
from mlcycle.reconcile.common import Outcome
from mlcycle.reconcile.modeldeployment import RESYNC_SECONDS, Followed, follow_alias
from mlcycle.registry import ModelVersion
from tests.unit.test_operator_serving import DEPLOYMENT, RUNTIME, SETTINGS

KEY: AliasKey = ("iris-classifier", "champion")


class Calls:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.resolved: list[int] = []
        self.rolled_out: list[int] = []
        self.reads = 0
        self.aliases: dict[AliasKey, int] = {KEY: 1}
        monkeypatch.setattr(modeldeployment, "resolve_model", self.resolve)
        monkeypatch.setattr(modeldeployment, "roll_out", self.roll_out)

    def resolve(self, deployment: Any, settings: Any) -> ModelVersion:
        version = self.aliases[KEY]
        self.resolved.append(version)
        return ModelVersion("iris-classifier", version, RUNTIME)

    def roll_out(self, deployment: Any, model: ModelVersion, settings: Any) -> Outcome[Any]:
        self.rolled_out.append(model.version)
        return Outcome(deployment.status)

    def read(self) -> dict[AliasKey, int]:
        self.reads += 1
        return dict(self.aliases)


def follow(calls: Calls, board: SharedBoard, last: Followed | None, clock: float,
           deployment: Any = DEPLOYMENT) -> Followed | None:
    done = follow_alias(deployment, last, board, SETTINGS, clock)
    return last if done is None else done[1]


def test_at_rest_nothing_but_the_shared_read_then_a_move_rolls_out(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls, now = Calls(monkeypatch), [0.0]
    board = SharedBoard(calls.read, clock=lambda: now[0])
    last = follow(calls, board, None, now[0])
    for tick in range(1, 60):  # 5 s apart, within one resync period
        now[0] = tick * 5.0
        last = follow(calls, board, last, now[0])
    assert calls.reads == 10  # one per poll interval (30 s), not one per tick
    assert (calls.resolved, calls.rolled_out) == ([1], [1])
    calls.aliases[KEY] = 2
    now[0] += 5
    follow(calls, board, last, now[0])
    assert (calls.resolved, calls.rolled_out) == ([1, 2], [1, 2])


def test_resync_reapplies_the_resolved_version_without_resolving(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls = Calls(monkeypatch)
    board = SharedBoard(calls.read, clock=lambda: 0.0)
    last = follow(calls, board, None, 0.0)
    last = follow(calls, board, last, RESYNC_SECONDS - 1)
    last = follow(calls, board, last, RESYNC_SECONDS)
    assert (calls.resolved, calls.rolled_out) == ([1], [1, 1])
    assert last is not None and last.at == RESYNC_SECONDS


def test_a_new_generation_resolves_again(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = Calls(monkeypatch)
    board = SharedBoard(calls.read, clock=lambda: 0.0)
    last = follow(calls, board, None, 0.0)
    newer = replace(DEPLOYMENT, metadata=DEPLOYMENT.metadata.model_copy(update={"generation": 4}))
    follow(calls, board, last, 1.0, newer)
    assert calls.resolved == [1, 1]
