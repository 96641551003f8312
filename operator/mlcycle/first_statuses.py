"""First statuses go first: a new object's first status is written on threads of their own,
and a reconcile waits (boundedly) for the first statuses asked for before it started.

In a burst of new objects, the API server's share of the cores is what every write waits
for. A reconcile writes three to five times (the Job, an Event, its status), a first status
once: let the reconciles' writes go first and each first status waits behind them.
"""

from __future__ import annotations

import heapq
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

logger = logging.getLogger(__name__)
# Long enough for a burst's first statuses, short enough that a reconcile is never held up
# long when the API server answers slowly.
WAIT_SECONDS = 2.0


class FirstStatuses:
    """A pool writing first statuses, numbered in the order they were asked for."""

    def __init__(self, pool: Executor) -> None:
        self._pool = pool
        self._changed = threading.Condition()
        self._asked = 0  # first statuses asked for so far
        self._in_flight: list[int] = []  # a heap; the smallest first
        self._finished: set[int] = set()  # written, still in the heap

    def write(self, write: Callable[..., None], *args: Any) -> None:
        """Write with `write(*args)` on the pool; a failure is logged (the reconcile writes a
        status anyway)."""
        with self._changed:
            self._asked += 1
            number = self._asked
            heapq.heappush(self._in_flight, number)
        written = self._pool.submit(write, *args)
        written.add_done_callback(lambda done: self._written(number, done))

    def _written(self, number: int, written: Future[None]) -> None:
        if not written.cancelled() and written.exception() is not None:
            logger.warning("Could not write a first status: %s", written.exception())
        with self._changed:
            self._finished.add(number)
            self._changed.notify_all()

    def asked(self) -> int:
        """How many first statuses were asked for so far."""
        with self._changed:
            return self._asked

    def wait_for_earlier(self, timeout: float = WAIT_SECONDS) -> bool:
        """Wait until every first status asked for before now is written (or failed), at
        most `timeout` seconds; False if some still were not. Later ones are not waited for:
        under a steady stream of new objects the reconciles still keep up."""
        return self.wait_for_first(self.asked(), timeout)

    def wait_for_first(self, asked: int, timeout: float) -> bool:
        """Wait until the first `asked` first statuses are written, at most `timeout` s."""
        with self._changed:
            return self._changed.wait_for(lambda: self._earliest_in_flight() > asked, timeout)

    def _earliest_in_flight(self) -> float:
        while self._in_flight and self._in_flight[0] in self._finished:
            self._finished.discard(heapq.heappop(self._in_flight))
        return self._in_flight[0] if self._in_flight else float("inf")
