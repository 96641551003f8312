"""Watcher liveness for the operator's /healthz: every resource the operator handles must
have a running watch task, or the probe fails and Kubernetes restarts the Pod.

kopf runs one asyncio task per watched (resource, namespace), named
"watcher for <plural>.<version>.<group>@<namespace or None>" (kopf's orchestration). In
kopf 1.45 a watcher that raised stops the whole operator, but one that returned is dropped from
the orchestration and comes back only when the cluster's resources or namespaces change: the
operator would sit alive and deaf (kopf issues #787, #1276). The probe does not depend on which
way a watcher ended, nor on kopf's version keeping that behaviour.

What is detected: a watcher task that is missing or done, for any resource handled in any
served namespace. What is not: a watcher task that runs but whose stream delivers nothing.
kopf does not expose when a watcher last received an event or bookmark, and telling a
silent stream from a quiet cluster would need its internals patched. That case is kopf's own
`settings.watching.inactivity_timeout` (70 s, longer than the apiserver's 60 s between
bookmarks): a stream silent that long is cut and listed again inside the same task.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

import kopf

from mlcycle_contract import constants

WATCHER_TASK_PREFIX = "watcher for "

# Every resource the handlers watch (handlers.py): the three kinds, and the children whose
# events reach their owners.
WATCHED_RESOURCES = (
    *(kopf.Resource(constants.API_GROUP, constants.API_VERSION, names.plural)
      for names in (constants.DATASET, constants.TRAINING_JOB, constants.MODEL_DEPLOYMENT)),
    kopf.Resource("batch", "v1", "jobs"),
    kopf.Resource("", "v1", "pods"),
    kopf.Resource("apps", "v1", "deployments"),
)


def watcher_name(resource: kopf.Resource, namespace: str | None) -> str:
    """kopf's name of the task watching `resource` in `namespace` (None: cluster-wide)."""
    return f"{WATCHER_TASK_PREFIX}{resource!r}@{namespace}"


@dataclass(frozen=True)
class TaskState:
    name: str
    done: bool


@dataclass(frozen=True)
class WatcherReport:
    running: tuple[str, ...]
    missing: tuple[str, ...]  # no task, or a task that ended

    @property
    def alive(self) -> bool:
        return not self.missing


def expected_watchers(resources: Iterable[kopf.Resource], namespaces: Iterable[str],
                      ) -> tuple[str, ...]:
    """The watcher tasks kopf runs for the served namespaces (none listed: cluster-wide)."""
    scopes: list[str | None] = list(namespaces) or [None]
    return tuple(watcher_name(resource, namespace)
                 for resource in resources for namespace in scopes)


def watcher_report(expected: Iterable[str], tasks: Iterable[TaskState]) -> WatcherReport:
    """Pure: which expected watchers have a task that has not ended."""
    live = {task.name for task in tasks if not task.done}
    wanted = tuple(expected)
    return WatcherReport(running=tuple(name for name in wanted if name in live),
                         missing=tuple(name for name in wanted if name not in live))


def running_tasks() -> list[TaskState]:
    """The event loop's tasks (call it on the loop: from an async probe)."""
    return [TaskState(task.get_name(), task.done()) for task in asyncio.all_tasks()]
