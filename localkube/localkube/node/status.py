"""Pure builders of Pod status: container statuses, the pod phase and conditions.

They mirror the kubelet's own rules (`getPhase`, `GeneratePodReadyCondition`, ...) so
that controllers (Jobs, Deployments, EndpointSlices) see what they would see on a
real node. Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

JSON = dict[str, Any]

PENDING = "Pending"
RUNNING = "Running"
SUCCEEDED = "Succeeded"
FAILED = "Failed"
TERMINAL_PHASES = frozenset({SUCCEEDED, FAILED})


@dataclass(frozen=True)
class Terminated:
    """One finished run of a container."""

    exit_code: int
    reason: str
    started_at: str
    finished_at: str
    container_id: str
    message: str | None = None
    signal: int | None = None

    def to_api(self) -> JSON:
        out: JSON = {
            "exitCode": self.exit_code,
            "reason": self.reason,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "containerID": self.container_id,
        }
        if self.message:
            out["message"] = self.message
        if self.signal is not None:
            out["signal"] = self.signal
        return out


@dataclass(frozen=True)
class ContainerView:
    """What the agent knows about one container slot, ready to be rendered.

    Exactly one of `waiting`, `running_since`, `terminated` describes the state.
    """

    name: str
    image: str
    image_id: str = ""
    restart_count: int = 0
    container_id: str | None = None
    waiting: tuple[str, str | None] | None = ("ContainerCreating", None)
    running_since: str | None = None
    terminated: Terminated | None = None
    last_terminated: Terminated | None = None
    ready: bool = False
    started: bool = False


def exit_reason(exit_code: int) -> str:
    """The kubelet's reason for a finished container (no OOM detection here)."""
    return "Completed" if exit_code == 0 else "Error"


def exit_code_from_returncode(returncode: int) -> tuple[int, int | None]:
    """Popen's returncode (negative for a signal) to (exitCode, signal) as CRI reports."""
    if returncode < 0:
        return 128 - returncode, -returncode
    return returncode, None


def build_container_status(view: ContainerView) -> JSON:
    state: JSON
    if view.terminated is not None:
        state = {"terminated": view.terminated.to_api()}
    elif view.running_since is not None:
        state = {"running": {"startedAt": view.running_since}}
    else:
        reason, message = view.waiting or ("ContainerCreating", None)
        waiting: JSON = {"reason": reason}
        if message:
            waiting["message"] = message
        state = {"waiting": waiting}
    out: JSON = {
        "name": view.name,
        "image": view.image,
        "imageID": view.image_id,
        "ready": view.ready,
        "started": view.started,
        "restartCount": view.restart_count,
        "state": state,
        "lastState": (
            {"terminated": view.last_terminated.to_api()} if view.last_terminated else {}
        ),
    }
    if view.container_id:
        out["containerID"] = view.container_id
    return out


def is_restartable_init(container: JSON) -> bool:
    """A native sidecar: an init container with `restartPolicy: Always`."""
    return container.get("restartPolicy") == "Always"


def _by_name(statuses: list[JSON]) -> dict[str, JSON]:
    return {s["name"]: s for s in statuses}


def _last_terminated(status: JSON) -> JSON | None:
    last = status.get("lastState") or {}
    term = last.get("terminated")
    return term if isinstance(term, dict) else None


def pod_phase(
    spec: JSON, init_statuses: list[JSON], statuses: list[JSON], *, pod_is_terminal: bool
) -> str:
    """The kubelet's `getPhase`, on API-shaped container statuses."""
    init_by_name = _by_name(init_statuses)
    by_name = _by_name(statuses)
    restart_policy = spec.get("restartPolicy", "Always")
    pending_regular_init = 0
    pending_restartable_init = 0
    failed_init = 0
    for c in spec.get("initContainers") or []:
        if is_restartable_init(c):
            continue
        st = init_by_name.get(c["name"])
        state = (st or {}).get("state") or {}
        if st is None or "running" in state:
            pending_regular_init += 1
        elif "terminated" in state:
            if state["terminated"].get("exitCode", 0) != 0:
                failed_init += 1
        elif "waiting" in state and _last_terminated(st) is not None:
            if (_last_terminated(st) or {}).get("exitCode", 0) != 0:
                failed_init += 1
        else:
            pending_regular_init += 1

    unknown = running = waiting = stopped = succeeded = 0
    for c in spec.get("initContainers") or []:
        if not is_restartable_init(c):
            continue
        st = init_by_name.get(c["name"])
        if st is None:
            unknown += 1
            continue
        state = st.get("state") or {}
        if "running" in state:
            if not st.get("started"):
                pending_restartable_init += 1
            running += 1
        elif "terminated" in state:
            pass
        elif "waiting" in state:
            if _last_terminated(st) is None:
                pending_restartable_init += 1
        else:
            pending_restartable_init += 1
            unknown += 1

    for c in spec.get("containers") or []:
        st = by_name.get(c["name"])
        if st is None:
            unknown += 1
            continue
        state = st.get("state") or {}
        if "running" in state:
            running += 1
        elif "terminated" in state:
            stopped += 1
            if state["terminated"].get("exitCode", 0) == 0:
                succeeded += 1
        elif "waiting" in state:
            if _last_terminated(st) is not None:
                stopped += 1
            else:
                waiting += 1
        else:
            unknown += 1

    if failed_init > 0 and restart_policy == "Never":
        return FAILED
    if pending_regular_init > 0 or (pending_restartable_init > 0 and running + stopped == 0):
        return PENDING
    if waiting > 0:
        return PENDING
    if running > 0 and unknown == 0:
        return RUNNING
    if running == 0 and stopped > 0 and unknown == 0:
        if pod_is_terminal:
            return SUCCEEDED if stopped == succeeded else FAILED
        if restart_policy == "Always":
            return RUNNING
        if stopped == succeeded:
            return SUCCEEDED
        if restart_policy == "Never":
            return FAILED
        return RUNNING
    return PENDING


def _go_list(names: list[str]) -> str:
    return "[" + " ".join(names) + "]"


def _condition(ctype: str, ok: bool, reason: str | None = None, message: str | None = None) -> JSON:
    # Explicit nulls: a strategic-merge patch would otherwise keep an old reason/message.
    return {
        "type": ctype,
        "status": "True" if ok else "False",
        "reason": reason or None,
        "message": message or None,
    }


def _has_regular_container_started(statuses: list[JSON]) -> bool:
    for st in statuses:
        state = st.get("state") or {}
        if "running" in state or "terminated" in state or _last_terminated(st) is not None:
            return True
    return False


def initialized_condition(
    spec: JSON, init_statuses: list[JSON], statuses: list[JSON], phase: str
) -> JSON:
    by_name = _by_name(init_statuses)
    unknown: list[str] = []
    incomplete: list[str] = []
    for c in spec.get("initContainers") or []:
        st = by_name.get(c["name"])
        if st is None:
            unknown.append(c["name"])
            continue
        state = st.get("state") or {}
        if is_restartable_init(c):
            if st.get("started"):
                continue
        elif "terminated" in state and state["terminated"].get("exitCode", 0) == 0:
            continue
        incomplete.append(c["name"])
    if phase == SUCCEEDED and not unknown:
        return _condition("Initialized", True, "PodCompleted")
    if _has_regular_container_started(statuses):
        return _condition("Initialized", True)
    if unknown:
        return _condition(
            "Initialized",
            False,
            "ContainersNotInitialized",
            f"containers with unknown status: {_go_list(unknown)}",
        )
    if incomplete:
        return _condition(
            "Initialized",
            False,
            "ContainersNotInitialized",
            f"containers with incomplete status: {_go_list(incomplete)}",
        )
    return _condition("Initialized", True)


def containers_ready_condition(
    spec: JSON, init_statuses: list[JSON], statuses: list[JSON], phase: str
) -> JSON:
    init_by_name = _by_name(init_statuses)
    by_name = _by_name(statuses)
    unknown: list[str] = []
    unready: list[str] = []
    for c in spec.get("initContainers") or []:
        if not is_restartable_init(c):
            continue
        st = init_by_name.get(c["name"])
        if st is None:
            unknown.append(c["name"])
        elif not st.get("ready"):
            unready.append(c["name"])
    for c in spec.get("containers") or []:
        st = by_name.get(c["name"])
        if st is None:
            unknown.append(c["name"])
        elif not st.get("ready"):
            unready.append(c["name"])
    if phase == SUCCEEDED and not unknown:
        return _condition("ContainersReady", False, "PodCompleted")
    if phase == FAILED:
        return _condition("ContainersReady", False, "PodFailed")
    messages = []
    if unknown:
        messages.append(f"containers with unknown status: {_go_list(unknown)}")
    if unready:
        messages.append(f"containers with unready status: {_go_list(unready)}")
    if messages:
        return _condition("ContainersReady", False, "ContainersNotReady", ", ".join(messages))
    return _condition("ContainersReady", True)


def ready_condition(spec: JSON, containers_ready: JSON, current_conditions: list[JSON]) -> JSON:
    if containers_ready["status"] != "True":
        return {**containers_ready, "type": "Ready"}
    by_type = {c.get("type"): c for c in current_conditions}
    messages = []
    for gate in spec.get("readinessGates") or []:
        ctype = gate.get("conditionType", "")
        cond = by_type.get(ctype)
        if cond is None:
            messages.append(
                f'corresponding condition of pod readiness gate "{ctype}" does not exist.'
            )
        elif cond.get("status") != "True":
            state = cond.get("status")
            messages.append(
                f'the status of pod readiness gate "{ctype}" is not "True", but {state}'
            )
    if messages:
        return _condition("Ready", False, "ReadinessGatesNotReady", ", ".join(messages))
    return _condition("Ready", True)


def with_transition_times(conditions: list[JSON], previous: list[JSON], now: str) -> list[JSON]:
    """Keep `lastTransitionTime` of conditions whose status did not change."""
    before = {c.get("type"): c for c in previous}
    out = []
    for cond in conditions:
        old = before.get(cond["type"])
        if (
            old is not None
            and old.get("status") == cond["status"]
            and old.get("lastTransitionTime")
        ):
            stamp = old["lastTransitionTime"]
        else:
            stamp = now
        out.append({**cond, "lastProbeTime": None, "lastTransitionTime": stamp})
    return out


def sort_container_statuses(statuses: list[JSON]) -> list[JSON]:
    """Regular containers sorted by name, as the kubelet does."""
    return sorted(statuses, key=lambda s: str(s["name"]))


@dataclass(frozen=True)
class PodFacts:
    """Sandbox-level facts that go into the pod status."""

    host_ip: str
    pod_ip: str | None
    start_time: str | None
    sandbox_ready: bool


def build_pod_status(
    pod: JSON,
    *,
    init_views: list[ContainerView],
    views: list[ContainerView],
    facts: PodFacts,
    pod_is_terminal: bool,
    previous_conditions: list[JSON],
    now: str,
) -> JSON:
    """The full status the agent wants the pod to have (a strategic-merge patch body)."""
    spec = pod.get("spec") or {}
    current = (pod.get("status") or {}).get("conditions") or []
    init_statuses = [build_container_status(v) for v in init_views]
    statuses = sort_container_statuses([build_container_status(v) for v in views])
    phase = pod_phase(spec, init_statuses, statuses, pod_is_terminal=pod_is_terminal)
    if pod_is_terminal and phase not in TERMINAL_PHASES:
        phase = FAILED
    containers_ready = containers_ready_condition(spec, init_statuses, statuses, phase)
    conditions = [
        _condition("PodReadyToStartContainers", facts.sandbox_ready),
        initialized_condition(spec, init_statuses, statuses, phase),
        ready_condition(spec, containers_ready, current),
        containers_ready,
    ]
    status: JSON = {
        "phase": phase,
        "conditions": with_transition_times(conditions, previous_conditions, now),
        "hostIP": facts.host_ip,
        "hostIPs": [{"ip": facts.host_ip}],
        "containerStatuses": statuses,
    }
    if spec.get("initContainers"):
        status["initContainerStatuses"] = init_statuses
    if facts.pod_ip:
        status["podIP"] = facts.pod_ip
        status["podIPs"] = [{"ip": facts.pod_ip}]
    if facts.start_time:
        status["startTime"] = facts.start_time
    generation = (pod.get("metadata") or {}).get("generation")
    if isinstance(generation, int):
        status["observedGeneration"] = generation
    return status


def status_differs(desired: JSON, current: JSON) -> bool:
    """Whether `desired` (our patch body) is not already reflected in `current`.

    Conditions are compared by type on status/reason/message only, so that a patch
    is sent only when something a reader cares about changed.
    """
    for key, value in desired.items():
        if key == "conditions":
            have = {c.get("type"): c for c in current.get("conditions") or []}
            for cond in value:
                old = have.get(cond["type"])
                if old is None:
                    return True
                for field in ("status", "reason", "message"):
                    if old.get(field) != cond.get(field):
                        return True
        elif current.get(key) != value:
            return True
    return False
