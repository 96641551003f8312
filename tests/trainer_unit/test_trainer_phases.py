"""The trainer's phase clock: laps that add up to the time since its process started."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from mlcycle_trainer.phases import PhaseClock, process_start_time


class FakeClock:
    def __init__(self, moments: list[float]) -> None:
        self.moments = moments

    def __call__(self) -> float:
        return self.moments.pop(0)


def test_each_phase_lasts_from_the_lap_before() -> None:
    clock = PhaseClock(100.0, now=FakeClock([100.5, 102.0, 102.25]))
    clock.lap("interpreter start")
    clock.lap("imports")
    clock.lap("fit")
    timings = clock.timings()
    assert timings.process_started == 100.0
    assert timings.phases == {"interpreter start": 0.5, "imports": 1.5, "fit": 0.25}
    assert list(timings.phases) == ["interpreter start", "imports", "fit"]


def test_a_phase_lapped_twice_adds_up_and_keeps_its_place() -> None:
    clock = PhaseClock(0.0, now=FakeClock([1.0, 3.0, 3.5]))
    clock.lap("log")
    clock.lap("fit")
    clock.lap("log")
    assert clock.timings().phases == {"log": 1.5, "fit": 2.0}


def test_timings_travel_as_camel_case_json() -> None:
    clock = PhaseClock(1.0, now=FakeClock([1.25]))
    clock.lap("imports")
    assert clock.timings().to_wire() == {"processStarted": 1.0, "phases": {"imports": 0.25}}


def test_this_process_started_before_now_and_after_the_boot() -> None:
    started = process_start_time()
    assert started is not None
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    assert time.time() - uptime - 0.1 <= started <= time.time()


def test_a_command_name_with_spaces_and_parentheses_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "self").mkdir()
    ticks = os.sysconf("SC_CLK_TCK")
    fields = ["S", *["0"] * 18, str(50 * ticks), "0"]  # starttime: 50 s after boot
    (tmp_path / "self" / "stat").write_text(f"42 (a (b) c) {' '.join(fields)}\n")
    (tmp_path / "uptime").write_text("80.00 10.00\n")
    started = process_start_time(tmp_path)
    assert started == pytest.approx(time.time() - 30, abs=0.5)


def test_no_proc_means_no_start_time(tmp_path: Path) -> None:
    assert process_start_time(tmp_path) is None
