"""Pod status builders (localkube.node.status): phases and conditions as the kubelet sets them."""

from __future__ import annotations

from typing import Any

import pytest

from localkube.node.status import (
    ContainerView,
    PodFacts,
    Terminated,
    build_container_status,
    build_pod_status,
    exit_code_from_returncode,
    pod_phase,
)

JSON = dict[str, Any]
NOW = "2026-01-01T00:00:10Z"
FACTS = PodFacts(host_ip="10.244.0.1", pod_ip="10.244.0.5", start_time=NOW, sandbox_ready=True)


def term(code: int) -> Terminated:
    return Terminated(code, "Completed" if code == 0 else "Error", NOW, NOW, "localkube://1")


def waiting(name: str, reason: str = "ContainerCreating") -> ContainerView:
    return ContainerView(name=name, image="python:3.11", waiting=(reason, None))


def running(name: str, ready: bool = True) -> ContainerView:
    return ContainerView(
        name=name,
        image="python:3.11",
        waiting=None,
        running_since=NOW,
        ready=ready,
        started=True,
        container_id="localkube://1",
    )


def done(name: str, code: int) -> ContainerView:
    return ContainerView(name=name, image="python:3.11", waiting=None, terminated=term(code))


def crashlooping(name: str, code: int) -> ContainerView:
    return ContainerView(
        name=name,
        image="python:3.11",
        restart_count=1,
        waiting=("CrashLoopBackOff", "back-off"),
        last_terminated=term(code),
    )


def pod(
    policy: str = "Always",
    containers: tuple[str, ...] = ("a",),
    inits: tuple[str, ...] = (),
    gates: tuple[str, ...] = (),
) -> JSON:
    spec: JSON = {"restartPolicy": policy, "containers": [{"name": n} for n in containers]}
    if inits:
        spec["initContainers"] = [{"name": n} for n in inits]
    if gates:
        spec["readinessGates"] = [{"conditionType": g} for g in gates]
    return {"metadata": {"name": "p", "namespace": "d", "generation": 1}, "spec": spec}


def status(
    p: JSON,
    views: list[ContainerView],
    inits: list[ContainerView] | None = None,
    terminal: bool = False,
) -> JSON:
    result: JSON = build_pod_status(
        p,
        init_views=inits or [],
        views=views,
        facts=FACTS,
        pod_is_terminal=terminal,
        previous_conditions=[],
        now=NOW,
    )
    return result


def conditions(st: JSON) -> dict[str, JSON]:
    return {c["type"]: c for c in st["conditions"]}


def test_pending_while_creating() -> None:
    st = status(pod(), [waiting("a")])
    assert st["phase"] == "Pending"
    assert conditions(st)["Ready"]["status"] == "False"
    assert conditions(st)["Ready"]["message"] == "containers with unready status: [a]"
    assert st["containerStatuses"][0]["state"] == {"waiting": {"reason": "ContainerCreating"}}
    assert st["podIP"] == "10.244.0.5"
    assert st["podIPs"] == [{"ip": "10.244.0.5"}]
    assert st["hostIPs"] == [{"ip": "10.244.0.1"}]
    assert st["observedGeneration"] == 1


def test_running_and_ready() -> None:
    st = status(pod(), [running("a")])
    assert st["phase"] == "Running"
    cond = conditions(st)
    assert {k: cond[k]["status"] for k in cond} == {
        "PodReadyToStartContainers": "True",
        "Initialized": "True",
        "Ready": "True",
        "ContainersReady": "True",
    }
    assert cond["Ready"]["reason"] is None
    assert cond["Ready"]["lastTransitionTime"] == NOW


def test_readiness_gates() -> None:
    p = pod(gates=("example.com/ok",))
    assert conditions(status(p, [running("a")]))["Ready"]["reason"] == "ReadinessGatesNotReady"
    p["status"] = {"conditions": [{"type": "example.com/ok", "status": "True"}]}
    assert conditions(status(p, [running("a")]))["Ready"]["status"] == "True"


@pytest.mark.parametrize(
    ("policy", "codes", "phase"),
    [
        ("Never", (0,), "Succeeded"),
        ("Never", (1,), "Failed"),
        ("Never", (0, 1), "Failed"),
        ("OnFailure", (0,), "Succeeded"),
        ("Always", (0,), "Running"),
    ],
)
def test_terminal_phases(policy: str, codes: tuple[int, ...], phase: str) -> None:
    names = tuple(f"c{i}" for i in range(len(codes)))
    views = [done(n, c) for n, c in zip(names, codes, strict=True)]
    assert status(pod(policy, names), views)["phase"] == phase


def test_crash_loop_is_running_for_always() -> None:
    assert status(pod("Always"), [crashlooping("a", 1)])["phase"] == "Running"
    assert status(pod("OnFailure"), [crashlooping("a", 1)])["phase"] == "Running"


def test_succeeded_conditions_say_pod_completed() -> None:
    st = status(pod("Never"), [done("a", 0)], terminal=True)
    cond = conditions(st)
    assert st["phase"] == "Succeeded"
    assert cond["Ready"]["reason"] == "PodCompleted"
    assert cond["Ready"]["message"] is None
    assert cond["Initialized"]["reason"] == "PodCompleted"


def test_terminal_pod_never_stays_pending() -> None:
    assert status(pod("Always"), [waiting("a")], terminal=True)["phase"] == "Failed"


def test_init_containers() -> None:
    p = pod("Always", inits=("i1", "i2"))
    st = status(p, [waiting("a", "PodInitializing")], inits=[done("i1", 0), running("i2")])
    assert st["phase"] == "Pending"
    assert conditions(st)["Initialized"]["message"] == "containers with incomplete status: [i2]"
    st = status(p, [running("a")], inits=[done("i1", 0), done("i2", 0)])
    assert st["phase"] == "Running"
    assert conditions(st)["Initialized"]["status"] == "True"
    assert [s["name"] for s in st["initContainerStatuses"]] == ["i1", "i2"]


def test_failed_init_with_never_fails_the_pod() -> None:
    p = pod("Never", inits=("i1",))
    assert status(p, [waiting("a", "PodInitializing")], inits=[done("i1", 1)])["phase"] == "Failed"


def test_sidecar_does_not_block_success() -> None:
    p = pod("Never")
    p["spec"]["initContainers"] = [{"name": "side", "restartPolicy": "Always"}]
    assert (
        pod_phase(
            p["spec"],
            [build_container_status(done("side", 143))],
            [build_container_status(done("a", 0))],
            pod_is_terminal=True,
        )
        == "Succeeded"
    )


def test_container_statuses_sorted_by_name_and_rendered() -> None:
    st = status(pod(containers=("b", "a")), [crashlooping("b", 2), running("a")])
    assert [c["name"] for c in st["containerStatuses"]] == ["a", "b"]
    b = st["containerStatuses"][1]
    assert b["lastState"]["terminated"]["exitCode"] == 2
    assert b["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert b["restartCount"] == 1
    assert st["containerStatuses"][0]["lastState"] == {}


def test_transition_times_are_kept_when_status_unchanged() -> None:
    p = pod()
    first = build_pod_status(
        p,
        init_views=[],
        views=[running("a")],
        facts=FACTS,
        pod_is_terminal=False,
        previous_conditions=[],
        now=NOW,
    )
    later = build_pod_status(
        p,
        init_views=[],
        views=[running("a")],
        facts=FACTS,
        pod_is_terminal=False,
        previous_conditions=first["conditions"],
        now="2026-01-01T00:05:00Z",
    )
    assert later == first


def test_exit_codes_from_signals() -> None:
    assert exit_code_from_returncode(0) == (0, None)
    assert exit_code_from_returncode(3) == (3, None)
    assert exit_code_from_returncode(-15) == (143, 15)
    assert exit_code_from_returncode(-9) == (137, 9)
