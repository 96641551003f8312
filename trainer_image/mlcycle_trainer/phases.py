"""Where a command's time goes: the wall-clock seconds of each phase, from the process's start.

The process has one clock, like its one logger: the entry point marks the interpreter's
start and the imports, the command marks its own phases, and the result carries them
(`TrainerTimings`), so a benchmark can split a run's end-to-end time between the platform
(Pod start, the operator) and each part of the trainer.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

from mlcycle_contract.results import TrainerTimings

logger = logging.getLogger(__name__)

DIGITS = 3


def process_start_time(proc: Path = Path("/proc")) -> float | None:
    """When this process started, in seconds since the epoch (10 ms resolution); None where
    /proc does not say (not Linux)."""
    try:
        # The command name, in parentheses, may hold spaces: fields count from its end.
        fields = (proc / "self" / "stat").read_text().rsplit(")", 1)[1].split()
        started_ticks = int(fields[19])  # starttime, the 22nd field: clock ticks after boot
        uptime = float((proc / "uptime").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return None
    return time.time() - uptime + started_ticks / os.sysconf("SC_CLK_TCK")


class PhaseClock:
    """Laps of a wall clock: each phase lasts from the end of the one before to its lap."""

    def __init__(self, started: float, now: Callable[[], float] = time.time) -> None:
        self.started = started
        self._now = now
        self._mark = started
        self._phases: dict[str, float] = {}

    def lap(self, phase: str) -> None:
        """End `phase` now; a phase lapped twice adds up."""
        moment = self._now()
        self._phases[phase] = self._phases.get(phase, 0.0) + max(0.0, moment - self._mark)
        self._mark = moment

    def timings(self) -> TrainerTimings:
        return TrainerTimings(
            process_started=round(self.started, DIGITS),
            phases={name: round(seconds, DIGITS) for name, seconds in self._phases.items()},
        )


_clock = PhaseClock(process_start_time() or time.time())


def lap(phase: str) -> None:
    """End `phase` of this process now."""
    _clock.lap(phase)


def timings() -> TrainerTimings:
    """This process's phases so far, also logged on one line."""
    measured = _clock.timings()
    logger.info("Phases (s): %s", ", ".join(f"{k} {v:.2f}" for k, v in measured.phases.items()))
    return measured
