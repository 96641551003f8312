"""Adopting pods after an agent restart (localkube.node.adoption)."""

from __future__ import annotations

from typing import Any

from localkube.node.adoption import adopt
from localkube.node.containers import Slot

JSON = dict[str, Any]
T0 = "2026-01-01T00:00:00Z"


def running(name: str, restarts: int = 0) -> JSON:
    return {
        "name": name,
        "containerID": "localkube://7",
        "restartCount": restarts,
        "state": {"running": {"startedAt": T0}},
        "lastState": {},
    }


def finished(name: str, code: int) -> JSON:
    term = {
        "exitCode": code,
        "reason": "Error" if code else "Completed",
        "startedAt": T0,
        "finishedAt": T0,
        "containerID": "localkube://8",
    }
    return {
        "name": name,
        "containerID": "localkube://8",
        "restartCount": 0,
        "state": {"terminated": term},
        "lastState": {},
    }


def pod(policy: str, phase: str, statuses: list[JSON], inits: list[JSON] | None = None) -> JSON:
    spec: JSON = {"restartPolicy": policy, "containers": [{"name": s["name"]} for s in statuses]}
    status: JSON = {
        "phase": phase,
        "startTime": T0,
        "podIP": "10.244.0.9",
        "containerStatuses": statuses,
        "conditions": [{"type": "Initialized", "status": "True"}],
    }
    if inits is not None:
        spec["initContainers"] = [{"name": s["name"]} for s in inits]
        status["initContainerStatuses"] = inits
    return {"spec": spec, "status": status}


def test_terminal_pods_keep_their_final_state() -> None:
    slots = [Slot({"name": "a"}, "main")]
    assert adopt(pod("OnFailure", "Succeeded", [finished("a", 0)]), [], slots).terminal
    assert slots[0].terminated is not None
    assert slots[0].terminated.exit_code == 0


def test_running_container_is_lost_then_restarted_for_always() -> None:
    slot = Slot({"name": "a"}, "main")
    adopted = adopt(pod("Always", "Running", [running("a", restarts=2)]), [], [slot])
    assert adopted.pod_ip == "10.244.0.9"
    assert adopted.start_time == T0
    assert slot.restart_count == 2
    assert slot.ever_started
    assert slot.terminated is None
    assert slot.last_terminated is not None
    assert slot.last_terminated.reason == "ContainerStatusUnknown"
    assert slot.last_terminated.exit_code == 137


def test_running_container_with_never_policy_ends_terminated() -> None:
    slot = Slot({"name": "a"}, "main")
    adopt(pod("Never", "Running", [running("a")]), [], [slot])
    assert slot.terminated is not None
    assert slot.terminated.exit_code == 137


def test_completed_init_containers_are_not_rerun() -> None:
    init = Slot({"name": "i"}, "init")
    main = Slot({"name": "a"}, "main")
    adopted = adopt(
        pod("Always", "Running", [running("a")], inits=[finished("i", 0)]), [init], [main]
    )
    assert adopted.initialized
    assert init.succeeded
