"""Container slots: one container of a pod across its restarts, and pure policy helpers."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from . import logfiles
from .clock import rfc3339
from .probes import Prober
from .runtime import ContainerProcess
from .status import ContainerView, Terminated, exit_code_from_returncode, exit_reason

JSON = dict[str, Any]

BACKOFF_CAP_SECONDS = 30.0
BACKOFF_RESET_SECONDS = 60.0
TERMINATION_MESSAGE_MAX = 4096
FALLBACK_LOG_LINES = 80
FALLBACK_LOG_BYTES = 2048
DEFAULT_TERMINATION_PATH = "/dev/termination-log"


def effective_restart_policy(kind: str, pod_policy: str) -> str:
    """Sidecars always restart; init containers restart on failure unless the pod says Never."""
    if kind == "sidecar":
        return "Always"
    if kind == "init":
        return "Never" if pod_policy == "Never" else "OnFailure"
    return pod_policy


def should_restart(policy: str, exit_code: int) -> bool:
    return policy == "Always" or (policy == "OnFailure" and exit_code != 0)


def backoff_delay(streak: int) -> float:
    """1s, 2s, 4s, ... capped at 30s, for the `streak`-th consecutive quick exit."""
    if streak <= 0:
        return 0.0
    return float(min(2 ** (streak - 1), BACKOFF_CAP_SECONDS))


def security_ids(pod: JSON, container: JSON) -> tuple[int | None, int | None, list[int]]:
    """(runAsUser, runAsGroup, supplementary groups); the container overrides the pod."""
    psc = (pod.get("spec") or {}).get("securityContext") or {}
    csc = container.get("securityContext") or {}
    uid = csc.get("runAsUser", psc.get("runAsUser"))
    gid = csc.get("runAsGroup", psc.get("runAsGroup"))
    groups = [int(g) for g in psc.get("supplementalGroups") or []]
    if psc.get("fsGroup") is not None and int(psc["fsGroup"]) not in groups:
        groups.append(int(psc["fsGroup"]))
    return (None if uid is None else int(uid), None if gid is None else int(gid), groups)


def termination_message(
    message_file: Path, log_path: Path, policy: str | None, exit_code: int
) -> str | None:
    """The message file's content, or the log tail for FallbackToLogsOnError failures."""
    try:
        with open(message_file, "rb") as fh:
            text = fh.read(TERMINATION_MESSAGE_MAX).decode("utf-8", "replace")
    except OSError:
        text = ""
    if not text and policy == "FallbackToLogsOnError" and exit_code != 0:
        text = logfiles.tail_text(
            log_path, max_lines=FALLBACK_LOG_LINES, max_bytes=FALLBACK_LOG_BYTES
        )
    return text or None


def terminated_from_status(status: JSON | None) -> Terminated | None:
    """A `state.terminated` / `lastState.terminated` dict back into a Terminated."""
    if not status:
        return None
    return Terminated(
        exit_code=int(status.get("exitCode", 0)),
        reason=str(status.get("reason") or ""),
        started_at=str(status.get("startedAt") or rfc3339()),
        finished_at=str(status.get("finishedAt") or rfc3339()),
        container_id=str(status.get("containerID") or ""),
        message=status.get("message"),
        signal=status.get("signal"),
    )


@dataclass
class Slot:
    """What the agent tracks for one container of a pod."""

    spec: JSON
    kind: str  # "init", "sidecar" or "main"
    restart_count: int = 0
    proc: ContainerProcess | None = None
    prober: Prober | None = None
    waiting: tuple[str, str | None] | None = ("ContainerCreating", None)
    terminated: Terminated | None = None
    last_terminated: Terminated | None = None
    next_attempt: float = 0.0
    crash_streak: int = 0
    pull_failures: int = 0
    exit_handled: bool = True
    ever_started: bool = False

    @property
    def name(self) -> str:
        return str(self.spec.get("name", ""))

    @property
    def image(self) -> str:
        return str(self.spec.get("image", ""))

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.running

    @property
    def busy(self) -> bool:
        """An instance exists whose exit the worker has not processed yet (or it runs)."""
        return self.proc is not None and not self.exit_handled

    @property
    def succeeded(self) -> bool:
        return self.terminated is not None and self.terminated.exit_code == 0

    @property
    def started(self) -> bool:
        return self.running and (self.prober is None or self.prober.started)

    def view(self) -> ContainerView:
        base = ContainerView(
            name=self.name,
            image=self.image,
            image_id=self.image if self.ever_started else "",
            restart_count=self.restart_count,
            last_terminated=self.last_terminated,
        )
        if self.proc is not None and self.proc.running:
            return replace(
                base,
                container_id=f"localkube://{self.proc.pid}",
                waiting=None,
                running_since=rfc3339(self.proc.started_at),
                ready=self.prober.ready if self.prober else True,
                started=self.started,
            )
        if self.terminated is not None:
            return replace(
                base,
                waiting=None,
                container_id=self.terminated.container_id or None,
                terminated=self.terminated,
            )
        last_id = self.last_terminated.container_id if self.last_terminated else None
        return replace(
            base, waiting=self.waiting or ("ContainerCreating", None), container_id=last_id or None
        )


def record_exit(slot: Slot, proc: ContainerProcess) -> Terminated:
    """Mark the run as processed and describe how it ended."""
    slot.exit_handled = True
    if slot.prober:
        slot.prober.stop()
    exit_code, sig = exit_code_from_returncode(proc.returncode or 0)
    start_error = proc.start_error() if exit_code == 128 else None
    message = start_error or termination_message(
        proc.workdir / f"termination-{proc.instance}",
        proc.log_path,
        slot.spec.get("terminationMessagePolicy"),
        exit_code,
    )
    return Terminated(
        exit_code=exit_code,
        reason="StartError" if start_error else exit_reason(exit_code),
        started_at=rfc3339(proc.started_at),
        finished_at=rfc3339(proc.finished_at or time.time()),
        container_id=f"localkube://{proc.pid}",
        message=message,
        signal=sig,
    )


def schedule_restart(slot: Slot, term: Terminated, proc: ContainerProcess, who: str) -> None:
    """CrashLoopBackOff until the backoff delay has passed (reset after a long run)."""
    ran = (proc.finished_at or time.time()) - proc.started_at
    slot.crash_streak = 1 if ran >= BACKOFF_RESET_SECONDS else slot.crash_streak + 1
    delay = backoff_delay(slot.crash_streak)
    slot.last_terminated, slot.terminated = term, None
    message = f"back-off {delay:g}s restarting failed container={slot.name} pod={who}"
    slot.waiting = ("CrashLoopBackOff", message)
    slot.next_attempt = time.monotonic() + delay
