"""Kill points: off without a plan, due once, on the N-th pass with `@N`, only in the armed
namespace; a due point kills the very process (run in a child here)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

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


def pass_points(armed: Path, *points: str) -> subprocess.CompletedProcess[str]:
    script = ("import sys; from mlcycle import faults; faults.configure(sys.argv[1]); "
              "[faults.reached(*p.split(':', 1)) for p in sys.argv[2:]]; print('survived')")
    return subprocess.run([sys.executable, "-c", script, str(armed), *points],
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
