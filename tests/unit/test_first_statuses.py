"""First statuses go first: a reconcile waits while any first status is being written."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from mlcycle.first_statuses import FirstStatuses

WAIT = 5.0  # long enough never to run out on a busy machine; a passing test waits less


def held(release: threading.Event, written: list[str], name: str) -> None:
    release.wait(WAIT)
    written.append(name)


def test_nothing_being_written_is_nothing_to_wait_for() -> None:
    assert FirstStatuses(ThreadPoolExecutor(1)).wait_until_written(timeout=0)


def test_a_reconcile_waits_for_the_first_status_being_written() -> None:
    first_statuses = FirstStatuses(ThreadPoolExecutor(2))
    release, written = threading.Event(), list[str]()
    first_statuses.write(held, release, written, "a")
    assert not first_statuses.wait_until_written(timeout=0.05)
    release.set()
    assert first_statuses.wait_until_written(timeout=WAIT)
    assert written == ["a"]


def test_a_first_status_asked_for_while_waiting_is_waited_for_too() -> None:
    first_statuses = FirstStatuses(ThreadPoolExecutor(2))
    release_a, release_b, written = threading.Event(), threading.Event(), list[str]()
    first_statuses.write(held, release_a, written, "a")
    waited = list[bool]()
    reconcile = threading.Thread(target=lambda: waited.append(
        first_statuses.wait_until_written(timeout=WAIT)))
    reconcile.start()
    first_statuses.write(held, release_b, written, "b")
    release_a.set()
    reconcile.join(0.2)
    assert written == ["a"] and reconcile.is_alive()  # "b" is still being written
    release_b.set()
    reconcile.join(WAIT)
    assert waited == [True] and written == ["a", "b"]


def test_the_wait_is_bounded() -> None:
    first_statuses = FirstStatuses(ThreadPoolExecutor(1))
    release = threading.Event()
    first_statuses.write(held, release, [], "a")
    assert not first_statuses.wait_until_written(timeout=0.05)
    release.set()


def test_a_failed_first_status_is_logged_and_waited_for_no_longer(
        caplog: pytest.LogCaptureFixture) -> None:
    def refused() -> None:
        raise RuntimeError("409 Conflict")

    first_statuses = FirstStatuses(ThreadPoolExecutor(1))
    with caplog.at_level(logging.WARNING):
        first_statuses.write(refused)
        assert first_statuses.wait_until_written(timeout=WAIT)
    assert "Could not write a first status: 409 Conflict" in caplog.text


def test_under_a_steady_stream_a_reconcile_waits_only_for_the_streams_first_seconds() -> None:
    now = [100.0]
    first_statuses = FirstStatuses(ThreadPoolExecutor(1), clock=lambda: now[0])
    release, written = threading.Event(), list[str]()
    first_statuses.write(held, release, written, "a")  # being written since 100.0
    now[0] = 100.0 + WAIT + 1  # first statuses have been written since before the bound
    assert not first_statuses.wait_until_written(timeout=WAIT)
    assert written == []  # returned at once, while "a" is still being written
    release.set()
