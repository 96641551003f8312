"""The operator's Prometheus metrics: the metric objects, and the few helpers the handlers, `kube`
and `registry` record them with. Served on MLCYCLE_METRICS_PORT (`serve`), beside the
prometheus-client's own process metrics (process_resident_memory_bytes, CPU seconds).

- `mlcycle_reconciles_total{kind, outcome}` and `mlcycle_reconcile_duration_seconds{kind}`:
  every reconcile a handler runs, by the kind it reconciles (a Job's event counts for its
  owner's kind); outcome `ok`, `temporary_error` (kopf retries it), `permanent_error` or
  `error` (an exception kopf did not expect).
- `mlcycle_jobs_created_total{component}`: Jobs the operator created (not the ones it found
  already there), by their `mlcycle.dev/component` label.
- `mlcycle_conditions{kind, type, status, reason}`: how many objects hold each condition now.
- `mlcycle_registry_requests_total{operation, outcome}`: the MLflow registry calls, the
  shared poll of every alias (`read_aliases`) among them.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import kopf
from prometheus_client import REGISTRY, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

P = ParamSpec("P")
R = TypeVar("R")

OK, TEMPORARY_ERROR, PERMANENT_ERROR, ERROR = "ok", "temporary_error", "permanent_error", "error"
NOT_FOUND, ACCESS_DENIED = "not_found", "access_denied"

RECONCILES = Counter("mlcycle_reconciles", "Reconciles, by the kind reconciled and how they "
                     "ended", ["kind", "outcome"])
RECONCILE_SECONDS = Histogram(
    "mlcycle_reconcile_duration_seconds", "Time a reconcile took, by the kind reconciled",
    ["kind"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
JOBS_CREATED = Counter("mlcycle_jobs_created", "Jobs the operator created, by their "
                       "mlcycle.dev/component label", ["component"])
REGISTRY_REQUESTS = Counter("mlcycle_registry_requests", "Calls to the MLflow model registry "
                            "(read_aliases: the shared alias poll), by how they ended",
                            ["operation", "outcome"])


@contextlib.contextmanager
def reconciling(kind: str) -> Iterator[None]:
    """Count and time the block as one reconcile of `kind`, by how it ends."""
    started = time.perf_counter()
    outcome = ERROR
    try:
        yield
        outcome = OK
    except kopf.TemporaryError:
        outcome = TEMPORARY_ERROR
        raise
    except kopf.PermanentError:
        outcome = PERMANENT_ERROR
        raise
    finally:
        RECONCILES.labels(kind=kind, outcome=outcome).inc()
        RECONCILE_SECONDS.labels(kind=kind).observe(time.perf_counter() - started)


def job_created(manifest: Mapping[str, Any], component_label: str) -> None:
    labels = manifest.get("metadata", {}).get("labels") or {}
    JOBS_CREATED.labels(component=labels.get(component_label, "")).inc()


def registry_call(operation: str, outcomes: Mapping[type[Exception], str],
                  ) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Count every call of the decorated registry function: `ok`, the outcome `outcomes`
    names for the exception it raised (the user's errors, not the registry's), else `error`."""
    def decorate(call: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(call)
        def counted(*args: P.args, **kwargs: P.kwargs) -> R:
            outcome = ERROR
            try:
                result = call(*args, **kwargs)
                outcome = OK
                return result
            except Exception as error:
                outcome = next((name for kind, name in outcomes.items()
                                if isinstance(error, kind)), ERROR)
                raise
            finally:
                REGISTRY_REQUESTS.labels(operation=operation, outcome=outcome).inc()
        return counted
    return decorate


@dataclass(frozen=True)
class HeldCondition:
    type: str
    status: str
    reason: str


ConditionKey = tuple[str, str, str, str]  # (kind, type, status, reason)
ObjectKey = tuple[str, str, str]  # (kind, namespace, name)


def held_conditions(status: Mapping[str, Any] | None) -> tuple[HeldCondition, ...]:
    """Pure: the conditions in a raw status, as the API holds it."""
    return tuple(HeldCondition(str(found.get("type", "")), str(found.get("status", "")),
                               str(found.get("reason", "")))
                 for found in (status or {}).get("conditions") or [] if found.get("type"))


def condition_counts(board: Mapping[ObjectKey, Iterable[HeldCondition]],
                     ) -> collections.Counter[ConditionKey]:
    """Pure: how many objects hold each (kind, type, status, reason)."""
    return collections.Counter((kind, held.type, held.status, held.reason)
                               for (kind, _, _), conditions in board.items()
                               for held in conditions)


class ConditionBoard(Collector):
    """The conditions every object holds now, as the watch streams deliver them (so what the
    API holds, not what a reconcile meant to write), exported as the gauge
    `mlcycle_conditions{kind, type, status, reason}`: the number of objects in that state.

    A gauge of states, not a counter of transitions, because that is what a platform team
    alerts on and what survives a restart (the watch lists every object again): e.g.
    `mlcycle_conditions{type="Ready", status="False", reason!~"Ingesting|Training|Searching|
    RollingOut|DatasetNotReady"} > 0 for 15m` (objects stuck failed: JobFailed, OOMKilled,
    InvalidSpec, ModelAccessDenied), `mlcycle_conditions{kind="ModelDeployment",
    type="Drifted", status="True"} > 0` (a model that drifts). The watch thread writes and
    the scrape thread reads, hence the lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._board: dict[ObjectKey, tuple[HeldCondition, ...]] = {}

    def observe(self, key: ObjectKey, status: Mapping[str, Any] | None) -> None:
        with self._lock:
            self._board[key] = held_conditions(status)

    def forget(self, key: ObjectKey) -> None:
        with self._lock:
            self._board.pop(key, None)

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            counts = condition_counts(self._board)
        gauge = GaugeMetricFamily("mlcycle_conditions", "Objects holding a condition now, by "
                                  "kind, condition type, status and reason",
                                  labels=["kind", "type", "status", "reason"])
        for labels, count in sorted(counts.items()):
            gauge.add_metric(list(labels), count)
        yield gauge


CONDITIONS = ConditionBoard()
REGISTRY.register(CONDITIONS)


def serve(port: int) -> None:
    """Serve /metrics from a daemon thread; port 0 serves nothing."""
    if port:
        start_http_server(port)
