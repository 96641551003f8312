"""Kubernetes Events about pods (`kubectl describe pod`), sent from a background thread.

Repeats of the same (object, reason, message) within a minute are folded into the
first event's `count`, as the client-go event correlator does, and a full queue
drops events rather than blocking a pod worker.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from .clock import rfc3339
from .kube import Kube, KubeError

log = logging.getLogger(__name__)

JSON = dict[str, Any]
FOLD_SECONDS = 60.0


@dataclass(frozen=True)
class PodRef:
    namespace: str
    name: str
    uid: str

    @classmethod
    def of(cls, pod: JSON) -> PodRef:
        meta = pod["metadata"]
        return cls(meta["namespace"], meta["name"], meta["uid"])

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


class EventRecorder:
    def __init__(self, kube: Kube, node_name: str, stop: threading.Event) -> None:
        self.kube = kube
        self.node_name = node_name
        self.stop = stop
        self._queue: queue.Queue[tuple[PodRef, str | None, str, str, str]] = queue.Queue(1000)
        self._recent: dict[tuple[str, str | None, str, str], tuple[float, str, int]] = {}
        self._thread = threading.Thread(target=self._run, name="events", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def emit(
        self,
        pod: PodRef,
        reason: str,
        message: str,
        *,
        warning: bool = False,
        container: str | None = None,
    ) -> None:
        etype = "Warning" if warning else "Normal"
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait((pod, container, etype, reason, message))

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                item = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                self._send(*item)
            except KubeError as exc:
                if exc.status not in (403, 404):
                    log.debug("Could not record event: %s", exc)
            except Exception:
                log.debug("Could not record event", exc_info=True)

    def _send(
        self, pod: PodRef, container: str | None, etype: str, reason: str, message: str
    ) -> None:
        now = time.monotonic()
        key = (pod.uid, container, reason, message)
        self._recent = {k: v for k, v in self._recent.items() if now - v[0] < FOLD_SECONDS}
        base = f"/api/v1/namespaces/{pod.namespace}/events"
        stamp = rfc3339()
        if key in self._recent:
            first, name, count = self._recent[key]
            self._recent[key] = (first, name, count + 1)
            self.kube.patch(f"{base}/{name}", {"count": count + 1, "lastTimestamp": stamp})
            return
        name = f"{pod.name}.{uuid.uuid4().hex[:16]}"
        involved: JSON = {
            "apiVersion": "v1",
            "kind": "Pod",
            "namespace": pod.namespace,
            "name": pod.name,
            "uid": pod.uid,
        }
        if container:
            involved["fieldPath"] = f"spec.containers{{{container}}}"
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": pod.namespace},
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "type": etype,
            "source": {"component": "kubelet", "host": self.node_name},
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "eventTime": None,
            "count": 1,
            "reportingComponent": "kubelet",
            "reportingInstance": self.node_name,
        }
        self.kube.request("POST", base, body=body)
        self._recent[key] = (now, name, 1)
