"""Kill points: off without a plan, due once, on the N-th pass with `@N`, only in the armed
namespace; a due point kills the very process (run in a child here)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mlcycle import faults
from mlcycle.faults import KillPlan, due_point

PLAN = KillPlan(namespace="faulted", points=["Job/train/created", "Dataset/applied@2"])


def test_a_point_is_due_until_it_fired() -> None:
    assert due_point(PLAN, set(), "Job/train/created", 5) == "Job/train/created"
    assert due_point(PLAN, {"Job/train/created"}, "Job/train/created", 6) is None
    assert due_point(PLAN, set(), "Job/ingest/created", 1) is None


def test_a_counted_point_is_due_on_that_pass_only() -> None:
    assert due_point(PLAN, set(), "Dataset/applied", 1) is None
    assert due_point(PLAN, set(), "Dataset/applied", 2) == "Dataset/applied@2"
    assert due_point(PLAN, set(), "Dataset/applied", 3) is None


def test_no_file_configured_or_written_means_no_kill(tmp_path: Path) -> None:
    faults.configure("")
    faults.reached("faulted", "Job/train/created")
    faults.configure(str(tmp_path / "absent.json"))
    faults.reached("faulted", "Job/train/created")
    faults.configure("")


def pass_points(armed: Path, *points: str, prefix: tuple[str, ...] = ()
                ) -> subprocess.CompletedProcess[str]:
    script = ("import sys; from mlcycle import faults; faults.configure(sys.argv[1]); "
              "[faults.reached(*p.split(':', 1)) for p in sys.argv[2:]]; print('survived')")
    return subprocess.run([*prefix, sys.executable, "-c", script, str(armed), *points],
                          capture_output=True, text=True, timeout=60)


def test_a_due_point_sigkills_the_process_and_is_recorded_once(tmp_path: Path) -> None:
    armed = tmp_path / "kill-points.json"
    armed.write_text(json.dumps(PLAN.model_dump()))
    other_namespace = pass_points(armed, "control:Job/train/created")
    assert other_namespace.returncode == 0 and "survived" in other_namespace.stdout

    killed = pass_points(armed, "faulted:Job/ingest/created", "faulted:Job/train/created")
    assert killed.returncode == -signal.SIGKILL and "survived" not in killed.stdout
    assert faults.fired_file(armed).read_text().split() == ["Job/train/created"]

    again = pass_points(armed, "faulted:Job/train/created", "faulted:Dataset/applied")
    assert again.returncode == 0, again.stderr


def test_a_due_point_ends_the_process_also_as_pid_1_of_a_container(tmp_path: Path) -> None:
    """The operator's image runs it as PID 1 of the container's PID namespace, where the
    kernel ignores a SIGKILL the process sends itself."""
    if os.geteuid() != 0:
        pytest.skip("a new PID namespace needs root (the suite's node runs as root)")
    armed = tmp_path / "kill-points.json"
    armed.write_text(json.dumps(PLAN.model_dump()))
    as_pid_1 = ("unshare", "--pid", "--fork", "--kill-child")
    killed = pass_points(armed, "faulted:Job/train/created", prefix=as_pid_1)
    assert killed.returncode == 128 + signal.SIGKILL, killed
    assert "survived" not in killed.stdout
