"""What every reconciler shares: conditions, the outcome of a finished Job read through the
typed results, and Events only on transitions.

A Job's end is read from its Pods as soon as they show it: the Pod whose workload exited 0
with its result completes a Job of one completion, and the Job controller says so only a
couple of seconds later. Failures are left to the Job (it may retry a failed Pod)."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, TypeVar

from pydantic import ValidationError

from mlcycle.builders.common import CONTAINER_NAME
from mlcycle.objects import Object, field_errors
from mlcycle.settings import Settings
from mlcycle_contract.api.common import (
    Condition,
    ConditionStatus,
    ConditionType,
    ObservedStatus,
    find_condition,
    set_condition,
)
from mlcycle_contract.results import CommandResult, FailureResult

Manifest = dict[str, Any]
ResultT = TypeVar("ResultT", bound=CommandResult)

ACCEPTED = "Accepted"
INVALID_SPEC = "InvalidSpec"
INVALID_RESULT = "InvalidResult"
OOM_KILLED = "OOMKilled"  # the kubelet's reason for a container the kernel killed
IMAGE_NOT_ALLOWED = "ImageNotAllowed"
MODEL_ACCESS_DENIED = "ModelAccessDenied"
# Ready=False reasons that say work is under way or waited for, not that something is wrong.
PROGRESS_REASONS = frozenset({"Ingesting", "Training", "Searching", "RollingOut",
                              "DatasetNotReady"})


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


def image_refusal(image: str | None, settings: Settings) -> str | None:
    """Pure: why a spec.image override may not run, if it may not."""
    if image is None or settings.image_allowed(image):
        return None
    return (f"spec.image: {image!r} is not on the operator's image allow-list "
            "(MLCYCLE_ALLOWED_IMAGES, chart value workloads.allowedImages); no Pod was created")


@dataclass(frozen=True)
class Event:
    type: str  # Normal or Warning
    reason: str
    message: str


StatusT = TypeVar("StatusT", bound=ObservedStatus)


def accepted(resource: Object[StatusT], phase: StrEnum) -> StatusT:
    """The first status of a new object whose spec parses, written as soon as the operator
    sees it: `kubectl get` shows it taken on while its reconcile still sets up credentials,
    Jobs or the model, which in a burst of new objects waits for a worker thread."""
    generation = resource.metadata.generation
    return resource.status.model_copy(update={
        "phase": phase,
        "observed_generation": generation,
        "conditions": with_ready([], None, ACCEPTED, "accepted; the operator is starting on it",
                                 generation),
    })


@dataclass
class Outcome(Generic[StatusT]):
    """A reconcile's result: the status to write and the Events to post."""

    status: StatusT
    events: list[Event] = field(default_factory=list)


def outcome(old: list[Condition], new: StatusT,
            type_: str = ConditionType.READY) -> Outcome[StatusT]:
    """The new status, and an Event if the given condition's reason changed."""
    return Outcome(status=new, events=transition_events(old, new.conditions, type_))


def transition_events(old: list[Condition], new: list[Condition], type_: str) -> list[Event]:
    """An Event when the condition's reason changes, so retries do not spam."""
    before, after = find_condition(old, type_), find_condition(new, type_)
    if after is None or (before is not None and before.reason == after.reason):
        return []
    return [Event(event_type(after), after.reason, after.message)]


def event_type(changed: Condition) -> str:
    """Warning when the condition reports a problem: a Degraded condition that holds, or any
    other that does not hold for a reason other than work under way."""
    if changed.type == ConditionType.DEGRADED:
        problem = changed.status == ConditionStatus.TRUE
    else:
        problem = (changed.status == ConditionStatus.FALSE
                   and changed.reason not in PROGRESS_REASONS)
    return "Warning" if problem else "Normal"


@dataclass(frozen=True)
class JobState:
    """Where a Job stands, with what its newest pod left in its termination message."""

    name: str
    finished: bool
    succeeded: bool
    message: str | None
    failed_reason: str = "JobFailed"  # the Job's own Failed condition
    failed_message: str = "the Job failed"
    oom_killed: str | None = None  # the memory limit, if the kernel killed the newest pod

    def result(self, model: type[ResultT]) -> ResultT | str:
        """The trainer's result as `model`, or what is wrong with it."""
        if not self.message:
            return f"result: Job {self.name} left no result in its termination message"
        try:
            return model.model_validate_json(self.message)
        except ValidationError as error:
            return field_errors(error, "result")

    def failure(self) -> tuple[str, str]:
        """Why the Job failed: out of memory (killed before it could say anything, though
        its logs may stand in for a message), else the trainer's own reason and message,
        else the Job's (a pod that was killed, or ran out of time, leaves no result)."""
        if self.oom_killed is not None:
            return OOM_KILLED, (f"Job {self.name}: the container exceeded its memory limit of "
                                f"{self.oom_killed} and was killed (raise "
                                "spec.resources.limits.memory)")
        failed = self.result(FailureResult)
        if isinstance(failed, str):
            return self.failed_reason, self.failed_message
        return failed.error.reason, failed.error.message


def termination_message(pod: Manifest) -> str | None:
    """What a container left in its termination message, if anything."""
    for status in pod.get("status", {}).get("containerStatuses") or []:
        terminated = (status.get("state") or {}).get("terminated") or {}
        if terminated.get("message"):
            return str(terminated["message"])
    return None


def oom_killed_limit(pod: Manifest) -> str | None:
    """The memory limit of the pod's container that the kernel killed for exceeding it."""
    for status in pod.get("status", {}).get("containerStatuses") or []:
        terminated = (status.get("state") or {}).get("terminated") or {}
        if terminated.get("reason") == OOM_KILLED:
            containers = {c["name"]: c for c in pod.get("spec", {}).get("containers") or []}
            limits = (containers.get(status.get("name"), {}).get("resources") or {}).get(
                "limits") or {}
            return str(limits.get("memory", "(none set)"))
    return None


def succeeded_result(pod: Manifest, results: tuple[type[CommandResult], ...]) -> str | None:
    """Pure: the termination message the pod's workload container left when it exited 0, if
    it holds one of `results`."""
    for status in pod.get("status", {}).get("containerStatuses") or []:
        terminated = (status.get("state") or {}).get("terminated") or {}
        message = terminated.get("message")
        if status.get("name") != CONTAINER_NAME or terminated.get("exitCode") != 0 or not message:
            continue
        for model in results:
            try:
                model.model_validate_json(message)
            except ValidationError:
                continue
            return str(message)
    return None


def completed_by_pod(job: Manifest, pods: list[Manifest],
                     results: tuple[type[CommandResult], ...]) -> str | None:
    """Pure: the result of the Job's Pod that completes it, before the Job controller marks
    it Complete: a Job of one completion is complete once one of its Pods succeeded. Only
    this Job's Pods count (a Job of the same name made again has another uid)."""
    if (job.get("spec") or {}).get("completions", 1) != 1:
        return None
    uid = job["metadata"].get("uid")
    for pod in pods:
        owners = {ref.get("uid") for ref in pod["metadata"].get("ownerReferences") or []
                  if ref.get("controller")}
        message = succeeded_result(pod, results) if uid in owners else None
        if message is not None:
            return message
    return None


def job_state(job: Manifest, pods: list[Manifest],
              results: tuple[type[CommandResult], ...] = ()) -> JobState:
    """Pure: read the Job's conditions and the newest pod's termination message. `results`:
    the results its command ends with; a Pod that exited 0 leaving one of them has the Job
    succeed before its Complete condition."""
    name = job["metadata"]["name"]
    conditions = {c["type"]: c for c in (job.get("status") or {}).get("conditions") or []
                  if c.get("status") == "True"}
    newest = sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "")
    message = termination_message(newest[-1]) if newest else None
    if "Complete" in conditions or "SuccessCriteriaMet" in conditions:
        return JobState(name, finished=True, succeeded=True, message=message)
    failed = conditions.get("Failed") or conditions.get("FailureTarget")
    if failed is None:
        result = completed_by_pod(job, pods, results)
        return JobState(name, finished=result is not None, succeeded=result is not None,
                        message=result if result is not None else message)
    return JobState(name, finished=True, succeeded=False, message=message,
                    failed_reason=str(failed.get("reason") or "JobFailed"),
                    failed_message=str(failed.get("message") or "the Job failed"),
                    oom_killed=oom_killed_limit(newest[-1]) if newest else None)
