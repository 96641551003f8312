"""Drift over every worker process of one Pod (MLCYCLE_WORKERS > 1).

The workers share the port (SO_REUSEPORT), so GET /drift reaches one of them, while the
operator adds up Pods, not workers. So each worker writes its window's counts to a
directory the supervisor made for the Pod, every `PUBLISH_SECONDS`, as a whole file (written
aside, then renamed over the last one: a reader never sees half of one). The worker that
answers /drift adds its own live counts to its siblings' files (`mlcycle_contract.drift.merge`,
as the operator adds replicas), leaving out a file not rewritten for `STALE_SECONDS` (its
worker is gone) and one of another version. With one worker none of this runs.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlcycle_contract.drift import DriftWindow, WorkerCounts, merge
from mlcycle_serving.drift import DriftMonitor

logger = logging.getLogger("mlcycle_serving")

PUBLISH_SECONDS = 1.0
STALE_SECONDS = 5 * PUBLISH_SECONDS
"""A file older than this is a worker's that stopped publishing: left out."""


@dataclass(frozen=True)
class Sibling:
    """Another worker's last published window, and how long ago it was written."""

    window: WorkerCounts
    age_seconds: float


class PodDrift:
    """One worker's side of its Pod's drift: it publishes its counts and answers the Pod's."""

    def __init__(
        self,
        monitor: DriftMonitor,
        directory: Path,
        worker: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.monitor = monitor
        self.directory = directory
        self.path = directory / f"worker-{worker}.json"
        self._clock = clock  # wall time: file modification times are compared with it

    def publish(self) -> None:
        """Write this worker's counts over its last file, atomically."""
        counts, oldest = self.monitor.snapshot()
        published = WorkerCounts(version=self.monitor.version, counts=counts, oldest_seconds=oldest)
        aside = self.path.with_suffix(".tmp")
        aside.write_bytes(published.model_dump_json().encode())
        os.replace(aside, self.path)

    def publish_every(self, seconds: float = PUBLISH_SECONDS) -> None:
        """Publish until the process ends (a daemon thread's target)."""
        while True:
            try:
                self.publish()
            except OSError as exc:  # the Pod's other workers answer without these counts
                logger.warning("Could not publish drift counts", extra={"error": str(exc)})
            time.sleep(seconds)

    def siblings(self) -> list[Sibling]:
        """The other workers' fresh windows of the version this one serves."""
        now = self._clock()
        found = []
        for path in self.directory.glob("worker-*.json"):
            if path == self.path:
                continue
            try:
                age = max(now - path.stat().st_mtime, 0.0)
                if age > STALE_SECONDS:
                    continue
                window = WorkerCounts.model_validate_json(path.read_bytes())
            except FileNotFoundError:  # its worker ended and the supervisor cleaned up
                continue
            if window.version == self.monitor.version:
                found.append(Sibling(window, age))
        return found

    def window(self) -> DriftWindow:
        """The Pod's window: this worker's live counts plus its siblings' last ones."""
        counts, oldest = self.monitor.snapshot()
        siblings = self.siblings()
        ages = [] if oldest is None else [oldest]
        ages += [
            s.window.oldest_seconds + s.age_seconds
            for s in siblings
            if s.window.oldest_seconds is not None
        ]
        merged = merge([counts, *(s.window.counts for s in siblings)])
        return self.monitor.window_of(merged, max(ages) if ages else None)
