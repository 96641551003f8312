"""Taking over pods after an agent restart.

A new agent run starts with no processes (start-up kills what the last run left), so
pods already running according to the API get their containers back as a runtime
would after losing them: restart counts carry on, a container that was running is
recorded as terminated with `ContainerStatusUnknown` (exit 137), then the restart
policy decides. Terminal pods are left as they are.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import containers as ct
from .clock import rfc3339
from .kube import JSON
from .status import TERMINAL_PHASES, Terminated

LOST_MESSAGE = "The container could not be located when the node agent restarted"


@dataclass(frozen=True)
class Adopted:
    terminal: bool = False
    start_time: str | None = None
    pod_ip: str | None = None
    initialized: bool = False


def adopt(pod: JSON, init_slots: list[ct.Slot], main_slots: list[ct.Slot]) -> Adopted:
    """Fill the slots from the pod's existing status; returns pod-level facts."""
    status = pod.get("status") or {}
    by_name = {s["name"]: s for s in status.get("containerStatuses") or []}
    init_by_name = {s["name"]: s for s in status.get("initContainerStatuses") or []}
    if status.get("phase") in TERMINAL_PHASES:
        for slot in init_slots + main_slots:
            st = by_name.get(slot.name) if slot.kind == "main" else init_by_name.get(slot.name)
            if st and st.get("containerID"):
                adopt_slot(slot, st, "Never")
        return Adopted(terminal=True)
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    pod_policy = (pod.get("spec") or {}).get("restartPolicy", "Always")
    started_before = any(s.get("containerID") for s in by_name.values())
    initialized = bool(init_slots) and conditions.get("Initialized") == "True" and started_before
    if initialized:
        for slot in init_slots:
            if slot.kind == "init":
                st = (init_by_name.get(slot.name) or {}).get("state") or {}
                done = ct.terminated_from_status(st.get("terminated"))
                slot.terminated = done or Terminated(0, "Completed", rfc3339(), rfc3339(), "")
    for slot in init_slots + main_slots:
        st = by_name.get(slot.name) if slot.kind == "main" else init_by_name.get(slot.name)
        if st and st.get("containerID") and slot.terminated is None:
            adopt_slot(slot, st, ct.effective_restart_policy(slot.kind, pod_policy))
    host_network = bool((pod.get("spec") or {}).get("hostNetwork"))
    return Adopted(
        start_time=status.get("startTime"),
        pod_ip=None if host_network else status.get("podIP"),
        initialized=initialized,
    )


def adopt_slot(slot: ct.Slot, st: JSON, policy: str) -> None:
    slot.restart_count = int(st.get("restartCount") or 0)
    slot.ever_started = True
    slot.last_terminated = ct.terminated_from_status((st.get("lastState") or {}).get("terminated"))
    state = st.get("state") or {}
    term = ct.terminated_from_status(state.get("terminated"))
    if term is None and "running" in state:
        term = Terminated(
            exit_code=137,
            reason="ContainerStatusUnknown",
            container_id=str(st["containerID"]),
            started_at=str(state["running"].get("startedAt") or rfc3339()),
            finished_at=rfc3339(),
            message=LOST_MESSAGE,
        )
    if term is None:
        return
    if ct.should_restart(policy, term.exit_code):
        slot.last_terminated = term
    else:
        slot.terminated = term
