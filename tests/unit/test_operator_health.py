"""The watcher probe's decision (mlcycle.health): which watch tasks the operator must run, and
the verdict from the tasks it finds."""

from __future__ import annotations

import asyncio
import dataclasses

import kopf
from kopf._cogs.aiokits import aiotoggles
from kopf._cogs.clients.auth import vault_var
from kopf._cogs.structs.credentials import Vault
from kopf._cogs.structs.references import NamespaceName
from kopf._core.reactor import orchestration

from mlcycle.health import (
    WATCHED_RESOURCES,
    TaskState,
    expected_watchers,
    running_tasks,
    watcher_report,
)

JOBS = kopf.Resource("batch", "v1", "jobs")
DEPLOYMENTS = kopf.Resource("apps", "v1", "deployments")


def test_one_watcher_per_resource_cluster_wide_or_per_served_namespace() -> None:
    assert expected_watchers([JOBS, DEPLOYMENTS], []) == (
        "watcher for jobs.v1.batch@None", "watcher for deployments.v1.apps@None")
    assert expected_watchers([JOBS], ["team-a", "team-b"]) == (
        "watcher for jobs.v1.batch@team-a", "watcher for jobs.v1.batch@team-b")


def test_the_operator_watches_its_three_kinds_and_their_children() -> None:
    names = expected_watchers(WATCHED_RESOURCES, [])
    assert set(names) == {
        "watcher for datasets.v1alpha1.mlcycle.dev@None",
        "watcher for trainingjobs.v1alpha1.mlcycle.dev@None",
        "watcher for modeldeployments.v1alpha1.mlcycle.dev@None",
        "watcher for jobs.v1.batch@None", "watcher for pods.v1@None",
        "watcher for deployments.v1.apps@None"}


def test_alive_only_while_every_expected_watcher_runs() -> None:
    expected = expected_watchers([JOBS, DEPLOYMENTS], ["ns"])
    tasks = [TaskState("watcher for jobs.v1.batch@ns", done=False),
             TaskState("watcher for deployments.v1.apps@ns", done=False),
             TaskState("poster of events", done=False)]
    report = watcher_report(expected, tasks)
    assert report.alive and report.running == expected and report.missing == ()


def test_a_missing_or_ended_watcher_fails_the_probe() -> None:
    expected = expected_watchers([JOBS, DEPLOYMENTS], ["ns"])
    ended = [TaskState("watcher for jobs.v1.batch@ns", done=True),
             TaskState("watcher for deployments.v1.apps@ns", done=False)]
    report = watcher_report(expected, ended)
    assert not report.alive and report.missing == ("watcher for jobs.v1.batch@ns",)
    # A watcher of another namespace does not stand in for this one's.
    elsewhere = [TaskState("watcher for jobs.v1.batch@other", done=False),
                 TaskState("watcher for deployments.v1.apps@ns", done=False)]
    assert watcher_report(expected, elsewhere).missing == ("watcher for jobs.v1.batch@ns",)
    assert watcher_report(expected, []).missing == expected


def test_running_tasks_are_the_loops_named_tasks() -> None:
    async def probe_beside_a_watcher() -> list[TaskState]:
        watcher = asyncio.create_task(asyncio.sleep(10), name="watcher for jobs.v1.batch@ns")
        await asyncio.sleep(0)
        try:
            return running_tasks()
        finally:
            watcher.cancel()

    found = asyncio.run(probe_beside_a_watcher())
    assert TaskState("watcher for jobs.v1.batch@ns", done=False) in found


def test_kopfs_own_orchestration_names_its_watchers_as_the_probe_expects() -> None:
    """The probe depends on kopf's task names, which kopf does not promise: its own
    orchestration spawns the watchers here (on an empty credentials vault, so they wait and
    never reach an apiserver), and a kopf upgrade that renames them fails this test."""
    resources = [dataclasses.replace(resource, namespaced=True)
                 for resource in WATCHED_RESOURCES]
    expected = expected_watchers(WATCHED_RESOURCES, ["ns"])

    async def spawn_then_end_one() -> tuple[list[TaskState], list[TaskState]]:
        vault_var.set(Vault())
        paused = aiotoggles.ToggleSet(any)
        ensemble = orchestration.Ensemble(
            operator_indexed=aiotoggles.ToggleSet(all), operator_paused=paused,
            peering_missing=await paused.make_toggle(name="peering"))

        async def processor(**_: object) -> None:
            return None

        await orchestration.spawn_missing_watchers(
            processor=processor, settings=kopf.OperatorSettings(), indexed_resources=set(),
            watched_resources=resources, watched_namespaces=[NamespaceName("ns")],
            ensemble=ensemble)
        await asyncio.sleep(0.05)
        spawned = running_tasks()
        watchers = list(ensemble.watcher_tasks.values())
        watchers[0].cancel()
        await asyncio.gather(watchers[0], return_exceptions=True)
        one_ended = running_tasks()
        for task in watchers[1:]:
            task.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        return spawned, one_ended

    spawned, one_ended = asyncio.run(spawn_then_end_one())
    assert watcher_report(expected, spawned).alive
    assert watcher_report(expected, one_ended).missing == (expected[0],)
