"""`python -m mlcycle`: run the operator (what the operator image's entrypoint runs).

A plain local process runs standalone. With `MLCYCLE_PEERING` naming a kopf peering (the
Helm chart sets it), several replicas run and exactly one is active: kopf pauses every
replica that sees a live peer of higher priority, and a replica's record expires
`peering_lifetime` seconds after its last keep-alive, so a crashed leader is replaced by
the next one. The priority is the start time, negated: the oldest replica leads and a
restarted one waits, so a rolling restart hands over once. An explicit
`MLCYCLE_PEERING_PRIORITY` wins over every replica (kopf's convention for a developer's
operator that should pause the in-cluster ones). The settings are in `mlcycle.settings`.
"""

from __future__ import annotations

import ctypes
import logging
import sys
import time
from dataclasses import dataclass

import kopf
from kubernetes.client.exceptions import ApiException

from mlcycle import faults, handlers, kopf_bodies, kube, metrics
from mlcycle.settings import Settings

PEERING_GROUP, PEERING_VERSION = "kopf.dev", "v1"
# How long a thread may hold the GIL while another waits for it (Python's default: 5 ms).
# A first status is written from a thread that wakes from each socket read to find the GIL
# held by reconciles parsing and building objects. Measured side by side with bench.scale's
# burst of 100 Datasets on 2 cores, 10 bursts of each interleaved: median p50 221 -> 173 ms.
GIL_SWITCH_INTERVAL_S = 0.0005
# glibc gives each thread that allocates an arena of its own, up to 8 per core, and memory
# freed in one arena serves no other: in a burst, the kopf, acknowledging and client threads
# each grew one and held it. Two arenas, with bench.scale's load side by side: peak RSS 302,
# 301 -> 289, 278, 257, 293 MB over four runs (at rest after the load: the same).
MALLOC_ARENAS = 2
M_ARENA_MAX = -8  # mallopt's parameter number, from glibc's malloc.h

logger = logging.getLogger("mlcycle")


@dataclass(frozen=True)
class Peering:
    """One kopf peering neighbourhood: its object's name, and this replica's place in it."""

    name: str
    priority: int
    lifetime: int


def peering_from_settings(settings: Settings, started_ms: int) -> Peering | None:
    """None (standalone) unless the settings name a peering."""
    if not settings.peering:
        return None
    priority = settings.peering_priority
    return Peering(name=settings.peering,
                   priority=priority if priority is not None else -started_ms,
                   lifetime=settings.peering_lifetime)


def peering_object(name: str, namespace: str | None) -> dict[str, object]:
    kind = "KopfPeering" if namespace else "ClusterKopfPeering"
    metadata: dict[str, str] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    return {"apiVersion": f"{PEERING_GROUP}/{PEERING_VERSION}", "kind": kind,
            "metadata": metadata}


def ensure_peering_objects(name: str, namespaces: list[str]) -> None:
    """kopf pauses until it sees its peering object: create it where missing (one per
    served namespace, or one cluster-wide)."""
    api = kube.custom()
    scopes: list[str | None] = list(namespaces) or [None]
    for namespace in scopes:
        body = peering_object(name, namespace)
        try:
            if namespace:
                api.create_namespaced_custom_object(
                    PEERING_GROUP, PEERING_VERSION, namespace, "kopfpeerings", body)
            else:
                api.create_cluster_custom_object(
                    PEERING_GROUP, PEERING_VERSION, "clusterkopfpeerings", body)
            logger.info("Created %s %s", body["kind"], name)
        except ApiException as error:
            if error.status == 404:
                logger.error("The kopf peering CRDs are not installed; the operator stays "
                             "paused until they are (the chart installs them with the CRDs)")
            elif error.status != 409:
                raise


def operator_settings(settings: Settings, peering: Peering | None) -> kopf.OperatorSettings:
    operator = kopf.OperatorSettings()
    operator.scanning.disabled = not settings.scan_cluster
    if peering is not None:
        operator.peering.lifetime = peering.lifetime
    return operator


def configure_logging() -> None:
    """The operator's own lines at INFO; kopf's per-object lines from WARNING up (retries,
    failures). At INFO kopf writes a line for every handler and timer that succeeded: with
    200 ModelDeployments polling every 5 s, 40 lines a second of nothing, and in a burst of
    new objects thousands, whose formatting held the GIL from the threads writing first
    statuses (burst p50 191 -> 152 ms side by side, 3 rounds each)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    # httpx logs every request at INFO: the registry polls (mlcycle.mlflow_api) would fill the log.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def limit_malloc_arenas(arenas: int) -> bool:
    """Whether glibc took the limit: call before any thread starts, as glibc fixes it when
    a thread first needs a second arena. False on a C library without mallopt (musl)."""
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    return mallopt is not None and mallopt(M_ARENA_MAX, arenas) == 1


def main() -> None:
    limit_malloc_arenas(MALLOC_ARENAS)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    configure_logging()
    kopf_bodies.drop_managed_fields()
    namespaces = handlers.SETTINGS.namespaces
    faults.configure(handlers.SETTINGS.kill_points)
    peering = peering_from_settings(handlers.SETTINGS, started_ms=time.time_ns() // 1_000_000)
    liveness = f"http://0.0.0.0:{handlers.SETTINGS.health_port}/healthz"
    metrics.serve(handlers.SETTINGS.metrics_port)
    settings = operator_settings(handlers.SETTINGS, peering)
    if peering is None:
        kopf.run(clusterwide=not namespaces, namespaces=namespaces, standalone=True,
                 settings=settings, liveness_endpoint=liveness)
        return
    ensure_peering_objects(peering.name, namespaces)
    logger.info("Peering %r with priority %d: active only while no live peer outranks it",
                peering.name, peering.priority)
    kopf.run(clusterwide=not namespaces, namespaces=namespaces, standalone=False,
             peering_name=peering.name, priority=peering.priority, settings=settings,
             liveness_endpoint=liveness)


if __name__ == "__main__":
    main()
