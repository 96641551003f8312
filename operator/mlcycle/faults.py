"""Kill points: the fault-injection suite's way to crash the operator at an exact write.

Off unless `MLCYCLE_KILL_POINTS` names a file (the local stack sets it; the chart never
does). A test writes that file to arm points for one namespace:

    {"namespace": "faults-x", "points": ["Job/train/created", "TrainingJob/status/Running@2"]}

Every write to the Kubernetes API passes a point named after what it writes (see `kube`):
`<Kind>/status/<phase>` just before a status patch and `.../written` just after it,
`<Kind>/event/<reason>` after an Event, `Job/<component>/created`, `Job/deleted`,
`Secret/created`, `<Kind>/applied`. A point with `@N` is due on its N-th pass in this
process. When the operator passes a due point in the armed namespace, it appends the point
to `<file>.fired` and SIGKILLs itself: no cleanup, no flush, as a lost node would. Each
point fires once; whoever supervises the operator starts it again, and it must carry on
from what the API and MLflow hold.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import signal
import threading
from pathlib import Path

from pydantic import BaseModel, ValidationError

logger = logging.getLogger(__name__)


class KillPlan(BaseModel):
    namespace: str
    points: list[str]


_armed_file: Path | None = None
_passes: collections.Counter[str] = collections.Counter()
_lock = threading.Lock()


def configure(armed_file: str | None) -> None:
    global _armed_file
    _armed_file = Path(armed_file) if armed_file else None


def fired_file(armed_file: Path) -> Path:
    return armed_file.with_name(armed_file.name + ".fired")


def read_plan(armed_file: Path) -> KillPlan | None:
    try:
        return KillPlan.model_validate_json(armed_file.read_text())
    except (FileNotFoundError, ValidationError, json.JSONDecodeError):
        return None


def fired_points(armed_file: Path) -> set[str]:
    try:
        return set(fired_file(armed_file).read_text().split())
    except FileNotFoundError:
        return set()


def due_point(plan: KillPlan, fired: set[str], point: str, passes: int) -> str | None:
    """The armed point this pass fires, if any: `point` itself, or `point@passes`."""
    for armed in (point, f"{point}@{passes}"):
        if armed in plan.points and armed not in fired:
            return armed
    return None


def reached(namespace: str, point: str) -> None:
    armed_file = _armed_file
    if armed_file is None:
        return
    plan = read_plan(armed_file)
    if plan is None or plan.namespace != namespace:
        return
    logger.info("Kill point passed: %s", point)
    with _lock:
        _passes[point] += 1
        due = due_point(plan, fired_points(armed_file), point, _passes[point])
        if due is None:
            return
        with fired_file(armed_file).open("a") as record:
            record.write(due + "\n")
            record.flush()
            os.fsync(record.fileno())
        logger.warning("Kill point %s reached in %s: SIGKILL", due, namespace)
        os.kill(os.getpid(), signal.SIGKILL)
        # Still here: this process is PID 1 of its PID namespace (the operator's container),
        # whose own SIGKILL the kernel ignores. Exit as a SIGKILL would have.
        os._exit(128 + signal.SIGKILL)
