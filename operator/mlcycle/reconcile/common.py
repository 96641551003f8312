"""What every reconciler shares: conditions, spec errors that name the field, the outcome of a
finished Job, and Events only on transitions."""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import ValidationError

from mlcycle import kube
from mlcycle_contract.api.common import (
    Condition,
    ConditionStatus,
    ConditionType,
    find_condition,
    set_condition,
)

Manifest = dict[str, Any]


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def condition(type_: str, status: bool | None, reason: str, message: str,
              generation: int | None) -> Condition:
    value = {True: ConditionStatus.TRUE, False: ConditionStatus.FALSE,
             None: ConditionStatus.UNKNOWN}[status]
    return Condition(type=type_, status=value, reason=reason, message=message[:1024],
                     observed_generation=generation, last_transition_time=now())


def with_ready(conditions: list[Condition], ready: bool | None, reason: str, message: str,
               generation: int | None) -> list[Condition]:
    """The conditions with the Ready condition set."""
    return set_condition(conditions,
                         condition(ConditionType.READY, ready, reason, message, generation))


def spec_error(error: ValidationError) -> str:
    """One line per problem, each starting with the field's path: `spec.target: ...`."""
    problems = []
    for item in error.errors():
        path = ".".join(str(part) for part in ("spec", *item["loc"]))
        problems.append(f"{path}: {item['msg']}")
    return "; ".join(problems)


@dataclass(frozen=True)
class Event:
    type: str  # Normal or Warning
    reason: str
    message: str


@dataclass
class Outcome:
    """A reconcile's result: the status to write and the Events to post."""

    status: Manifest
    events: list[Event] = field(default_factory=list)


class StatusWithConditions(Protocol):
    conditions: list[Condition]

    def to_wire(self) -> dict[str, Any]: ...


def outcome(old: list[Condition], new: StatusWithConditions,
            type_: str = ConditionType.READY) -> Outcome:
    """The new status, and an Event if the given condition's reason changed."""
    return Outcome(status=new.to_wire(), events=transition_events(old, new.conditions, type_))


def transition_events(old: list[Condition], new: list[Condition], type_: str) -> list[Event]:
    """An Event when the condition's reason changes, so retries do not spam."""
    before, after = find_condition(old, type_), find_condition(new, type_)
    if after is None or (before is not None and before.reason == after.reason):
        return []
    kind = "Warning" if after.status == ConditionStatus.FALSE and after.reason.endswith(
        ("Failed", "Invalid", "NotFound", "Missing", "Error", "Exceeded", "Unreadable",
         "Mismatch", "Unsupported")) else "Normal"
    return [Event(kind, after.reason, after.message)]


@dataclass(frozen=True)
class JobState:
    """Where a Job stands, with what its pod reported through the termination message."""

    finished: bool
    succeeded: bool
    result: dict[str, Any]
    failure_reason: str = ""
    failure_message: str = ""


def termination_message(pod: Manifest) -> dict[str, Any] | None:
    """The JSON a container left in its termination message, if any."""
    for status in pod.get("status", {}).get("containerStatuses") or []:
        terminated = (status.get("state") or {}).get("terminated") or {}
        message = terminated.get("message")
        if message:
            try:
                parsed = json.loads(message)
            except json.JSONDecodeError:
                return {"error": {"reason": "UnreadableResult", "message": message[:512]}}
            return parsed if isinstance(parsed, dict) else None
    return None


def job_state(job: Manifest, pods: list[Manifest]) -> JobState:
    """Pure: read the Job's conditions and the newest pod's termination message."""
    conditions = {c["type"]: c for c in (job.get("status") or {}).get("conditions") or []
                  if c.get("status") == "True"}
    newest = sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "")
    result = (termination_message(newest[-1]) if newest else None) or {}
    if "Complete" in conditions or "SuccessCriteriaMet" in conditions:
        return JobState(finished=True, succeeded=True, result=result)
    failed = conditions.get("Failed") or conditions.get("FailureTarget")
    if failed is None:
        return JobState(finished=False, succeeded=False, result=result)
    error = result.get("error") or {}
    return JobState(
        finished=True,
        succeeded=False,
        result=result,
        failure_reason=str(error.get("reason") or failed.get("reason") or "JobFailed"),
        failure_message=str(error.get("message") or failed.get("message") or "the Job failed"),
    )


def post_events(body: Manifest, events: list[Event]) -> None:
    for event in events:
        kube.post_event(body, event.type, event.reason, event.message)
