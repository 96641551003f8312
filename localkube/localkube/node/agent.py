"""The node agent: registers the Node, watches its Pods, runs one worker per Pod.

Start-up cleans what a previous run left (recorded process groups, `lkpod-*`
namespaces); shutdown kills every container it started and removes their
namespaces, so stopping the agent leaves no process behind.
"""

from __future__ import annotations

import logging
import shutil
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from .config import NodeConfig
from .env import service_env
from .events import EventRecorder
from .heartbeat import NodeHeartbeat
from .images import Interpreter
from .kube import JSON, Kube, KubeError, KubeLookups, Stopped, retry
from .logs_server import KubeletServer
from .network import IpPool, cleanup_stale_sandboxes
from .pod_worker import LogNotFound, PodWorker
from .provisioner import Provisioner
from .runtime import kill_recorded_processes
from .services import NodeServices

log = logging.getLogger(__name__)

WATCH_TIMEOUT_SECONDS = 300
SHUTDOWN_JOIN_SECONDS = 10.0


class _Relist(Exception):
    """The watch expired (410 Gone): list again."""


class Agent:
    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.stop = threading.Event()
        self.pods_dir = config.state_dir / "pods"
        self.workers: dict[str, PodWorker] = {}
        self.finished: set[str] = set()
        self.lock = threading.Lock()
        self.services: NodeServices | None = None
        self.server: KubeletServer | None = None

    # --- lifecycle -----------------------------------------------------------------

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        self.pods_dir.mkdir(parents=True, exist_ok=True)
        self.cleanup_leftovers()
        try:
            self._start()
            while not self.stop.wait(1.0):
                pass
        except Stopped:
            pass
        finally:
            self._shutdown()
        return 0

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("Received %s; stopping the node agent", signal.Signals(signum).name)
        self.stop.set()

    def cleanup_leftovers(self) -> None:
        killed = kill_recorded_processes(self.pods_dir)
        removed = cleanup_stale_sandboxes()
        if killed or removed:
            log.info(
                "Cleaned up a previous run: %d process groups, %d network namespaces",
                killed,
                removed,
            )

    def _start(self) -> None:
        cfg = self.config
        kube = Kube(cfg.kubeconfig)
        heartbeat = NodeHeartbeat(kube, cfg, self.stop)
        heartbeat.register()
        events = EventRecorder(kube, cfg.node_name, self.stop)
        self.services = NodeServices(
            config=cfg,
            kube=kube,
            lookups=KubeLookups(kube),
            events=events,
            ips=IpPool(cfg.pod_cidr, cfg.host_ip),
            interp=Interpreter.of(sys.executable),
            stop=self.stop,
            allocatable=heartbeat.allocatable,
            service_env=service_env(cfg.api_host, cfg.api_port),
        )
        events.start()
        heartbeat.start()
        Provisioner(kube, cfg.state_dir / "volumes", cfg.node_name, self.stop).start()
        self.server = KubeletServer(
            cfg.host_ip,
            cfg.kubelet_port,
            cert_file=cfg.kubelet_cert_file,
            key_file=cfg.kubelet_key_file,
            ca_file=cfg.ca_file,
            source=self,
            stop=self.stop,
        )
        self.server.start()
        threading.Thread(target=self._watch_pods, name="pod-watch", daemon=True).start()
        log.info("Node agent for %s is running", cfg.node_name)

    def _shutdown(self) -> None:
        self.stop.set()
        with self.lock:
            workers = list(self.workers.values())
        for worker in workers:
            worker.shutdown()
        for worker in workers:
            worker.thread.join(SHUTDOWN_JOIN_SECONDS)
        if self.server is not None:
            self.server.close()
        # Whatever a worker could not finish in time: kill by pid file and netns prefix.
        self.cleanup_leftovers()
        log.info("Node agent stopped")

    # --- pod watch -----------------------------------------------------------------

    def _watch_pods(self) -> None:
        assert self.services is not None
        kube = self.services.kube
        query = {"fieldSelector": f"spec.nodeName={self.config.node_name}"}
        first = True
        while not self.stop.is_set():
            try:
                listing = retry(
                    lambda: kube.get("/api/v1/pods", query=query), what="list pods", stop=self.stop
                )
                items: list[JSON] = listing.get("items") or []
                self._sync_all(items)
                if first:
                    self._prune_state({p["metadata"]["uid"] for p in items})
                    first = False
                rv = str(listing["metadata"]["resourceVersion"])
                while not self.stop.is_set():
                    rv = self._watch_once(kube, query, rv)
            except (Stopped, _Relist):
                continue
            except Exception as exc:
                log.warning("Pod watch failed (%s); listing again", exc)
                self.stop.wait(2.0)

    def _watch_once(self, kube: Kube, query: dict[str, str], rv: str) -> str:
        params = {
            **query,
            "resourceVersion": rv,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(WATCH_TIMEOUT_SECONDS),
        }
        for event in kube.watch("/api/v1/pods", params, timeout=WATCH_TIMEOUT_SECONDS + 30):
            etype, obj = event.get("type"), event.get("object") or {}
            if etype == "ERROR":
                if obj.get("code") == 410:
                    raise _Relist()
                raise KubeError(int(obj.get("code") or 0), str(obj.get("message")))
            rv = str((obj.get("metadata") or {}).get("resourceVersion") or rv)
            if etype in ("ADDED", "MODIFIED"):
                self._upsert(obj)
            elif etype == "DELETED":
                self._deleted(obj)
            if self.stop.is_set():
                break
        return rv

    def _sync_all(self, pods: list[JSON]) -> None:
        seen = set()
        for pod in pods:
            seen.add(pod["metadata"]["uid"])
            self._upsert(pod)
        with self.lock:
            gone = [w for uid, w in self.workers.items() if uid not in seen]
        for worker in gone:
            worker.vanish()

    def _upsert(self, pod: JSON) -> None:
        assert self.services is not None
        uid = pod["metadata"]["uid"]
        with self.lock:
            if uid in self.finished:
                return
            worker = self.workers.get(uid)
            if worker is None:
                worker = PodWorker(self.services, pod, self._worker_done)
                self.workers[uid] = worker
                worker.start()
                return
        worker.update(pod)

    def _deleted(self, pod: JSON) -> None:
        with self.lock:
            worker = self.workers.get(pod["metadata"]["uid"])
        if worker is not None:
            worker.vanish()

    def _worker_done(self, uid: str) -> None:
        with self.lock:
            self.workers.pop(uid, None)
            self.finished.add(uid)
            if len(self.finished) > 10000:
                self.finished.clear()

    def _prune_state(self, live: set[str]) -> None:
        """Remove state of pods that no longer exist (kept across restarts for logs)."""
        for child in self.pods_dir.iterdir() if self.pods_dir.exists() else []:
            if child.is_dir() and child.name not in live:
                shutil.rmtree(child, ignore_errors=True)

    # --- kubelet API ---------------------------------------------------------------

    def log_target(
        self, namespace: str, pod: str, container: str, previous: bool
    ) -> tuple[Path, Callable[[], bool]]:
        with self.lock:
            matches = [
                w
                for w in self.workers.values()
                if w.ref.namespace == namespace and w.ref.name == pod
            ]
        if not matches:
            raise LogNotFound(
                f'pod "{pod}" in namespace "{namespace}" not found on node {self.config.node_name}'
            )
        worker = next((w for w in matches if not w.terminal), matches[-1])
        return worker.log_target(container, previous)
