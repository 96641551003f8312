"""One thread per pod: sandbox, containers, restarts, status, deletion.

The worker re-evaluates its pod on every wake-up (a pod update, a process exit, a
probe result, a backoff deadline) and publishes the resulting status through the
`pods/status` subresource whenever it changed.
"""

from __future__ import annotations

import json
import logging
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

from . import containers as ct
from .adoption import adopt
from .clock import rfc3339
from .events import PodRef
from .images import ImageError
from .kube import JSON, KubeError, Stopped, retry
from .logfiles import instance_logs
from .probes import Prober
from .runtime import ContainerProcess
from .sandbox import PodSandbox
from .services import NodeServices
from .starter import StartFailure, prepare_launch
from .status import PodFacts, build_pod_status, is_restartable_init

log = logging.getLogger(__name__)

VOLUME_REFRESH_SECONDS = 60.0
IDLE_WAIT_SECONDS = 30.0


class LogNotFound(LookupError):
    """No such container or log (HTTP 404)."""


class LogNotReady(ValueError):
    """The container has no log yet (HTTP 400, as the kubelet answers)."""


class PodWorker:
    def __init__(self, svc: NodeServices, pod: JSON, on_done: Callable[[str], None]) -> None:
        self.svc = svc
        self.pod = pod
        self.on_done = on_done
        self.ref = PodRef.of(pod)
        self.uid = self.ref.uid
        self.dir = svc.config.state_dir / "pods" / self.uid
        spec = pod.get("spec") or {}
        self.sandbox = PodSandbox(svc, self.ref, self.dir, lambda: self.pod)
        self.init_slots = [
            ct.Slot(c, "sidecar" if is_restartable_init(c) else "init")
            for c in spec.get("initContainers") or []
        ]
        self.main_slots = [ct.Slot(c, "main") for c in spec.get("containers") or []]
        adopted = adopt(pod, self.init_slots, self.main_slots)
        self.adopted_terminal = adopted.terminal
        self.terminal = adopted.terminal
        self.start_time = adopted.start_time
        self.sandbox.preferred_ip = adopted.pod_ip
        self.initialized = adopted.initialized or not self.init_slots
        self.finishing = False
        self.last_sent: JSON | None = None
        self.last_refresh = time.monotonic()
        self._wake = threading.Event()
        self._vanished = False
        self._shutdown = False
        self.thread = threading.Thread(target=self._run, name=f"pod {self.ref}", daemon=True)

    # --- interface for the agent -------------------------------------------------

    def start(self) -> None:
        self.thread.start()

    def update(self, pod: JSON) -> None:
        self.pod = pod
        self._wake.set()

    def vanish(self) -> None:
        """The pod is gone from the API: kill and clean up without API calls."""
        self._vanished = True
        self._wake.set()

    def shutdown(self) -> None:
        """The agent stops: kill the containers and remove the sandbox."""
        self._shutdown = True
        self._wake.set()

    @property
    def slots(self) -> list[ct.Slot]:
        return self.init_slots + self.main_slots

    def slot(self, name: str) -> ct.Slot | None:
        return next((s for s in self.slots if s.name == name), None)

    # --- main loop ---------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        except Stopped:
            self._kill_all(grace=2.0)
            self.sandbox.teardown()
        except Exception:
            log.exception("Pod worker for %s crashed; killing its containers", self.ref)
            self._kill_all(grace=2.0)
            self.sandbox.teardown()
        finally:
            self.on_done(self.uid)

    def _loop(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "pod.json").write_text(
            json.dumps(
                {
                    "namespace": self.ref.namespace,
                    "name": self.ref.name,
                    "uid": self.uid,
                    "netns": self.sandbox.netns,
                }
            )
        )
        self._publish()
        while True:
            if self._shutdown or self._vanished or self.svc.stop.is_set():
                self._kill_all(grace=2.0)
                self.sandbox.teardown()
                if self._vanished:
                    log.info("Pod %s was removed from the API; cleaned up", self.ref)
                    shutil.rmtree(self.dir, ignore_errors=True)
                return
            pod = self.pod
            if (pod.get("metadata") or {}).get("deletionTimestamp"):
                self._delete(pod)
                return
            try:
                self._sync(pod)
            except Stopped:
                raise
            except KubeError as exc:
                log.warning("Syncing pod %s failed: %s", self.ref, exc)
            except Exception:
                log.exception("Syncing pod %s failed; retrying", self.ref)
                self.svc.stop.wait(1.0)
            self._publish()
            self._wake.wait(self._next_wait())
            self._wake.clear()

    def _next_wait(self) -> float:
        if self.terminal:
            return IDLE_WAIT_SECONDS  # only a pod update (deletion) matters now
        now = time.monotonic()
        wait = 1.0
        for slot in self.slots:
            if not slot.running and slot.next_attempt > now:
                wait = min(wait, slot.next_attempt - now)
        return max(wait, 0.02)

    def _sync(self, pod: JSON) -> None:
        if self.terminal:
            return
        if not self.sandbox.ensure(pod):
            return
        self._handle_exits()
        self._handle_probe_kills()
        if not self.finishing:
            if not self.initialized:
                self._step_init(pod)
            if self.initialized and not self.finishing:
                for slot in [s for s in self.init_slots if s.kind == "sidecar"] + self.main_slots:
                    if not slot.busy and slot.terminated is None:
                        self._maybe_start(slot, pod)
                if all(s.terminated is not None for s in self.main_slots):
                    self._begin_finishing()
        if self.finishing and not any(s.running for s in self.slots):
            self._become_terminal()
        elif time.monotonic() - self.last_refresh > VOLUME_REFRESH_SECONDS:
            self.last_refresh = time.monotonic()
            self.sandbox.refresh_volumes(pod)

    # --- containers --------------------------------------------------------------

    def _step_init(self, pod: JSON) -> None:
        for slot in self.init_slots + self.main_slots:
            if slot.waiting == ("ContainerCreating", None) and not slot.ever_started:
                slot.waiting = ("PodInitializing", None)
        for slot in self.init_slots:
            if slot.kind == "sidecar":
                if not slot.busy and slot.terminated is None:
                    self._maybe_start(slot, pod)
                if not slot.started:
                    return
                continue
            if slot.succeeded:
                continue
            if slot.busy:
                return
            if slot.terminated is not None:
                log.info("Init container %s of pod %s failed; pod fails", slot.name, self.ref)
                self._begin_finishing()
                return
            self._maybe_start(slot, pod)
            return
        self.initialized = True
        for slot in self.main_slots:
            if slot.waiting == ("PodInitializing", None):
                slot.waiting = ("ContainerCreating", None)

    def _waiting(self, slot: ct.Slot, reason: str, message: str, retry_in: float) -> None:
        if slot.waiting != (reason, message):
            log.warning("Container %s of pod %s: %s: %s", slot.name, self.ref, reason, message)
            self.svc.events.emit(
                self.ref,
                "Failed",
                f"Error: {message}" if reason.startswith("Create") else message,
                warning=True,
                container=slot.name,
            )
        slot.waiting = (reason, message)
        slot.next_attempt = time.monotonic() + retry_in

    def _maybe_start(self, slot: ct.Slot, pod: JSON) -> None:
        if slot.busy or time.monotonic() < slot.next_attempt:
            return
        svc = self.svc
        instance = slot.restart_count + (1 if slot.ever_started else 0)
        workdir = self.dir / "containers" / slot.name
        try:
            prepared = prepare_launch(
                svc,
                self.sandbox.pod_with_status(pod),
                slot.spec,
                volume_paths=self.sandbox.volumes.paths,
                message_file=workdir / f"termination-{instance}",
                home=str(self.sandbox.home),
                tmp_dir=workdir / "tmp",
            )
        except ImageError as exc:
            slot.pull_failures += 1
            reason = "ErrImagePull" if slot.pull_failures == 1 else "ImagePullBackOff"
            self._waiting(slot, reason, str(exc), min(5.0 * 2 ** (slot.pull_failures - 1), 60.0))
            return
        except StartFailure as exc:
            self._waiting(slot, exc.reason, exc.message, exc.retry_in)
            return
        except KubeError as exc:
            log.warning("Preparing container %s of pod %s: %s", slot.name, self.ref, exc)
            slot.next_attempt = time.monotonic() + 2.0
            return
        proc = ContainerProcess(
            label=f"{self.ref}/{slot.name}",
            workdir=workdir,
            instance=instance,
            spec=prepared.launch,
            netns=self.sandbox.netns,
            python=svc.interp.python,
            on_exit=self._wake.set,
        )
        try:
            proc.start()
        except OSError as exc:
            self._waiting(slot, "RunContainerError", f"failed to start container: {exc}", 5.0)
            return
        if slot.ever_started:
            slot.restart_count += 1
        slot.ever_started = True
        slot.proc, slot.exit_handled, slot.waiting, slot.terminated = proc, False, None, None
        slot.pull_failures = 0
        host = self.sandbox.pod_ip or svc.config.host_ip
        slot.prober = Prober(
            slot.spec,
            proc,
            host=host,
            python=svc.interp.python,
            on_change=self._wake.set,
            on_failure=self._probe_failed(slot.name),
        )
        slot.prober.start()
        log.info("Started container %s in pod %s (pid %d)", slot.name, self.ref, proc.pid)
        pulled = f'Container image "{slot.image}" already present on machine'
        svc.events.emit(self.ref, "Pulled", pulled, container=slot.name)
        svc.events.emit(self.ref, "Created", f"Created container: {slot.name}", container=slot.name)
        svc.events.emit(self.ref, "Started", f"Started container {slot.name}", container=slot.name)

    def _probe_failed(self, container: str) -> Callable[[str, str], None]:
        def emit(reason: str, message: str) -> None:
            self.svc.events.emit(self.ref, reason, message, warning=True, container=container)

        return emit

    def _handle_exits(self) -> None:
        pod_policy = (self.pod.get("spec") or {}).get("restartPolicy", "Always")
        for slot in self.slots:
            proc = slot.proc
            if proc is None or proc.running or slot.exit_handled or proc.returncode is None:
                continue
            term = ct.record_exit(slot, proc)
            note = f" ({term.reason})" if term.reason == "StartError" else ""
            log.info(
                "Container %s in pod %s exited with code %d%s",
                slot.name,
                self.ref,
                term.exit_code,
                note,
            )
            policy = ct.effective_restart_policy(slot.kind, pod_policy)
            if self.finishing or not ct.should_restart(policy, term.exit_code):
                slot.terminated = term
                continue
            who = f"{self.ref.name}_{self.ref.namespace}({self.uid})"
            ct.schedule_restart(slot, term, proc, who)
            message = f"Back-off restarting failed container {slot.name} in pod {who}"
            self.svc.events.emit(self.ref, "BackOff", message, warning=True, container=slot.name)

    def _grace(self, probe: JSON | None = None) -> float:
        spec = self.pod.get("spec") or {}
        if probe and probe.get("terminationGracePeriodSeconds") is not None:
            return float(probe["terminationGracePeriodSeconds"])
        value = spec.get("terminationGracePeriodSeconds")
        return 30.0 if value is None else float(value)

    def _handle_probe_kills(self) -> None:
        for slot in self.slots:
            proc, prober = slot.proc, slot.prober
            if proc is None or prober is None or not prober.failed:
                continue
            if not proc.running or proc.stop_requested:
                continue
            log.info("%s (pod %s)", prober.failed, self.ref)
            self.svc.events.emit(self.ref, "Killing", prober.failed, container=slot.name)
            probe = slot.spec.get("livenessProbe" if prober.started else "startupProbe")
            proc.terminate(self._grace(probe))

    def _begin_finishing(self) -> None:
        """Regular containers are done (or init failed): stop sidecars, then go terminal."""
        self.finishing = True
        for slot in self.slots:
            if slot.proc and slot.running and not slot.proc.stop_requested:
                slot.proc.terminate(self._grace())

    def _become_terminal(self) -> None:
        self._handle_exits()
        self.sandbox.teardown()
        self.terminal = True
        log.info("Pod %s finished", self.ref)

    def _kill_all(self, grace: float) -> None:
        running = [s for s in self.slots if s.proc and s.running]
        for slot in running:
            assert slot.proc is not None
            slot.proc.terminate(grace)
        deadline = time.monotonic() + grace + 5.0
        for slot in running:
            assert slot.proc is not None
            slot.proc.wait(max(0.0, deadline - time.monotonic()))
            if slot.prober:
                slot.prober.stop()

    # --- deletion ----------------------------------------------------------------

    def _delete(self, pod: JSON) -> None:
        meta = pod["metadata"]
        grace = meta.get("deletionGracePeriodSeconds")
        grace = self._grace() if grace is None else float(grace)
        self.finishing = True
        running = [s for s in self.slots if s.running]
        for slot in running:
            log.info(
                "Killing container %s in pod %s with a grace period of %gs",
                slot.name,
                self.ref,
                grace,
            )
            self.svc.events.emit(
                self.ref, "Killing", f"Stopping container {slot.name}", container=slot.name
            )
        self._kill_all(grace)
        self._handle_exits()
        self.sandbox.teardown()
        self.terminal = True
        if not self.adopted_terminal:
            self._publish(must=True)
        body = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": self.uid},
        }
        path = f"/api/v1/namespaces/{self.ref.namespace}/pods/{self.ref.name}"
        try:
            retry(
                lambda: self.svc.kube.request("DELETE", path, body=body),
                what=f"delete pod {self.ref}",
                stop=self.svc.stop,
            )
            log.info("Deleted pod %s", self.ref)
        except KubeError as exc:
            if exc.status in (404, 409):
                log.info("Pod %s is already gone", self.ref)
            else:
                log.warning("Deleting pod %s failed: %s", self.ref, exc)
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- status ------------------------------------------------------------------

    def _publish(self, must: bool = False) -> None:
        if self.adopted_terminal:
            return
        pod = self.pod
        if self.start_time is None:
            self.start_time = rfc3339()
        previous = (self.last_sent or pod.get("status") or {}).get("conditions") or []
        status = build_pod_status(
            pod,
            init_views=[s.view() for s in self.init_slots],
            views=[s.view() for s in self.main_slots],
            facts=PodFacts(
                host_ip=self.svc.config.host_ip,
                pod_ip=self.sandbox.pod_ip,
                start_time=self.start_time,
                sandbox_ready=self.sandbox.net_ready,
            ),
            pod_is_terminal=self.terminal,
            previous_conditions=previous,
            now=rfc3339(),
        )
        if status == self.last_sent:
            return
        body = {"status": dict(status)}
        current_ips = (pod.get("status") or {}).get("podIPs") or []
        if "podIPs" in status and current_ips and current_ips != status["podIPs"]:
            body["status"]["podIPs"] = [{"$patch": "replace"}, *status["podIPs"]]
        path = f"/api/v1/namespaces/{self.ref.namespace}/pods/{self.ref.name}/status"
        try:
            retry(
                lambda: self.svc.kube.patch(path, body),
                what=f"update status of pod {self.ref}",
                stop=self.svc.stop,
                attempts=0 if must else 3,
            )
        except KubeError as exc:
            if exc.status != 404:
                log.warning("Updating status of pod %s failed: %s", self.ref, exc)
            return
        if status["phase"] != (self.last_sent or {}).get("phase"):
            log.info("Pod %s is %s", self.ref, status["phase"])
        self.last_sent = status

    # --- logs --------------------------------------------------------------------

    def log_target(self, container: str, previous: bool) -> tuple[Path, Callable[[], bool]]:
        """The log file to serve (kubelet semantics), and whether it may still grow."""
        slot = self.slot(container)
        if slot is None:
            raise LogNotFound(f'container "{container}" is not valid for pod {self.ref.name}')
        files = instance_logs(self.dir / "containers" / container)
        current_exists = slot.terminated is not None or slot.busy
        if previous:
            # lastState.terminated: the run before the current one, or the last run
            # while the container waits to be restarted.
            index = -2 if current_exists else -1
            if slot.last_terminated is None or len(files) < -index:
                raise LogNotReady(
                    f'previous terminated container "{container}" in pod "{self.ref.name}" '
                    "not found"
                )
            return files[index][1], lambda: False
        if not files:
            reason = slot.waiting[0] if slot.waiting else "ContainerCreating"
            raise LogNotReady(
                f'container "{container}" in pod "{self.ref.name}" is waiting to start: {reason}'
            )
        instance, path = files[-1]

        def active() -> bool:
            proc = slot.proc
            return proc is not None and proc.instance == instance and not proc.logs_complete

        return path, active
