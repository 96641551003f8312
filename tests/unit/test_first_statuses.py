"""First statuses go first: a reconcile waits for those asked for before it, not after."""

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


def test_nothing_asked_for_is_nothing_to_wait_for() -> None:
    assert FirstStatuses(ThreadPoolExecutor(1)).wait_for_earlier(timeout=0)


def test_a_reconcile_waits_for_the_first_status_asked_for_before_it() -> None:
    first_statuses = FirstStatuses(ThreadPoolExecutor(2))
    release, written = threading.Event(), list[str]()
    first_statuses.write(held, release, written, "a")
    assert not first_statuses.wait_for_earlier(timeout=0.05)
    release.set()
    assert first_statuses.wait_for_earlier(timeout=WAIT)
    assert written == ["a"]


def test_a_first_status_asked_for_after_the_wait_began_is_not_waited_for() -> None:
    first_statuses = FirstStatuses(ThreadPoolExecutor(2))
    release_a, release_b, written = threading.Event(), threading.Event(), list[str]()
    first_statuses.write(held, release_a, written, "a")
    asked_before = first_statuses.asked()
    first_statuses.write(held, release_b, written, "b")
    release_a.set()
    assert first_statuses.wait_for_first(asked_before, timeout=WAIT)
    assert written == ["a"]  # "b" is still being written
    assert not first_statuses.wait_for_earlier(timeout=0.05)
    release_b.set()
    assert first_statuses.wait_for_earlier(timeout=WAIT)


def test_a_failed_first_status_is_logged_and_waited_for_no_longer(
        caplog: pytest.LogCaptureFixture) -> None:
    def refused() -> None:
        raise RuntimeError("409 Conflict")

    first_statuses = FirstStatuses(ThreadPoolExecutor(1))
    with caplog.at_level(logging.WARNING):
        first_statuses.write(refused)
        assert first_statuses.wait_for_earlier(timeout=WAIT)
    assert "Could not write a first status: 409 Conflict" in caplog.text
