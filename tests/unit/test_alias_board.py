"""The shared alias board: one registry read per poll interval, however many deployments
ask."""

from __future__ import annotations

from mlcycle.alias_board import AliasKey, SharedBoard


class Registry:
    def __init__(self) -> None:
        self.reads = 0
        self.versions: dict[AliasKey, int] = {("iris", "champion"): 1}

    def read(self) -> dict[AliasKey, int]:
        self.reads += 1
        return dict(self.versions)


def test_many_deployments_within_one_interval_share_one_read() -> None:
    registry, now = Registry(), [100.0]
    board = SharedBoard(registry.read, clock=lambda: now[0])
    for _ in range(200):
        assert board.version(("iris", "champion"), max_age=10) == 1
    assert registry.reads == 1


def test_a_moved_alias_is_seen_once_the_board_is_older_than_the_interval() -> None:
    registry, now = Registry(), [100.0]
    board = SharedBoard(registry.read, clock=lambda: now[0])
    assert board.version(("iris", "champion"), max_age=10) == 1
    registry.versions[("iris", "champion")] = 2
    now[0] = 109.9
    assert board.version(("iris", "champion"), max_age=10) == 1
    now[0] = 110.0
    assert board.version(("iris", "champion"), max_age=10) == 2
    assert board.version(("wine", "champion"), max_age=10) is None
    assert registry.reads == 2
