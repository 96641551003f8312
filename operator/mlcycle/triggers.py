"""Pure: when a TrainingJob's automatic triggers fire (spec.schedule, spec.retrain.onNewData,
spec.retrain.onDrift) and whether its limits let a run start (concurrencyPolicy,
retrain.minInterval, retrain.maxRunsPerDay). Cron as CronJob reads it, through cronsim, in the
spec's time zone. Drift comes from the ModelDeployments that monitor a version the TrainingJob
produced: the operator records that version's lineage (the TrainingJob's uid) in their
status.drift.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cronsim import CronSim, CronSimError

from mlcycle.objects import ModelDeployment
from mlcycle.reconcile.common import condition
from mlcycle_contract.api.common import Condition, parse_duration
from mlcycle_contract.api.trainingjob import (
    ConcurrencyPolicy,
    RunPhase,
    RunTrigger,
    TrainingJobConditionType,
    TrainingJobSpec,
    TrainingJobStatus,
)

# CronJob's macros, which cronsim does not read.
MACROS = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
DAY = timedelta(days=1)
COOLDOWN, DAILY_LIMIT, RUNNING = "Cooldown", "DailyLimit", "Running"


def schedule_problem(spec: TrainingJobSpec) -> str | None:
    """What is wrong with spec.schedule or spec.timeZone, naming the field; None if nothing."""
    try:
        zone(spec.time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return (f"spec.timeZone: {spec.time_zone!r} is not a known IANA time zone "
                "(e.g. Europe/Berlin, America/New_York, UTC)")
    if spec.schedule is not None:
        try:
            CronSim(MACROS.get(spec.schedule, spec.schedule), datetime.now(UTC))
        except CronSimError as error:
            return f"spec.schedule: {spec.schedule!r} is not a valid cron schedule: {error}"
    return None


def zone(name: str | None) -> zoneinfo.ZoneInfo:
    return zoneinfo.ZoneInfo(name or "UTC")


def latest_fire(spec: TrainingJobSpec, after: datetime, at: datetime) -> datetime | None:
    """The schedule's latest fire time in (after, at], in UTC; fires missed before it are
    not made up (CronJob starts only the most recent too)."""
    assert spec.schedule is not None
    local = (at + timedelta(seconds=1)).astimezone(zone(spec.time_zone))
    fire: datetime = next(CronSim(MACROS.get(spec.schedule, spec.schedule), local,
                                  reverse=True))
    fire = fire.astimezone(UTC)
    return fire if fire > after else None


@dataclass(frozen=True)
class Trigger:
    """A trigger that fired: what, its identity (one run per identity), why in words."""

    kind: RunTrigger
    key: str
    reason: str


@dataclass(frozen=True)
class Due:
    """What fired at a tick, and where the schedule's bookkeeping stands after it."""

    triggers: list[Trigger]
    last_schedule_time: datetime | None


@dataclass(frozen=True)
class DriftReport:
    """A ModelDeployment monitoring drift of a model version the TrainingJob produced."""

    training_job_uid: str  # the TrainingJob that produced the version (its lineage tag)
    deployment: str
    model: str
    version: int
    detected_time: datetime | None  # while drift is detected
    features: list[str]  # the drifted ones


def drift_report(deployment: ModelDeployment) -> DriftReport | None:
    """A deployment's report for the TrainingJob whose version it monitors: with
    spec.monitoring.drift and the version's lineage recorded in status.drift."""
    found = deployment.status.drift
    if not deployment.spec.monitoring.drift or found is None or not found.training_job_uid:
        return None
    return DriftReport(
        training_job_uid=found.training_job_uid, deployment=deployment.metadata.name,
        model=deployment.spec.model.name, version=found.version,
        detected_time=found.detected_time if found.detected else None,
        features=[f.name for f in found.features if f.drifted])


def drift_monitored(spec: TrainingJobSpec, reports: Sequence[DriftReport],
                    generation: int | None) -> Condition:
    """DriftMonitored: whether any deployment watches this TrainingJob's models for
    spec.retrain.onDrift."""
    if reports:
        names = ", ".join(sorted({r.deployment for r in reports}))
        return condition(TrainingJobConditionType.DRIFT_MONITORED, True, "Monitored",
                         f"spec.retrain.onDrift: ModelDeployment {names} monitors drift of a "
                         "model version this TrainingJob produced", generation)
    return condition(TrainingJobConditionType.DRIFT_MONITORED, False, "NotMonitored",
                     "spec.retrain.onDrift: no ModelDeployment with spec.monitoring.drift "
                     f"serves a model version this TrainingJob produced (model "
                     f"{spec.registry.model_name or 'unnamed'}), so drift cannot start a run",
                     generation)


def due(spec: TrainingJobSpec, status: TrainingJobStatus, dataset_version: str | None,
        at: datetime, drifts: Sequence[DriftReport] = ()) -> Due:
    """The automatic triggers that fired by `at`. A schedule first seen counts from `at`;
    new data is a Dataset version other than the latest run's; drift is a detection first
    seen after the latest run started (one run per detection)."""
    fired: list[Trigger] = []
    last_schedule = status.last_schedule_time
    if spec.schedule is not None:
        fire = latest_fire(spec, last_schedule, at) if last_schedule is not None else None
        if fire is not None:
            fired.append(Trigger(RunTrigger.SCHEDULE, f"schedule/{fire.isoformat()}",
                                 f"spec.schedule {spec.schedule!r} fired at {fire.isoformat()}"))
        last_schedule = fire or last_schedule or at
    trained_on = status.runs[0].dataset_version if status.runs else status.dataset_version
    if (spec.retrain.on_new_data and spec.dataset_ref.version is None
            and dataset_version is not None and dataset_version != trained_on):
        fired.append(Trigger(RunTrigger.NEW_DATA, f"data/{dataset_version}",
                             f"Dataset {spec.dataset_ref.name} has a new version "
                             f"{dataset_version} (the last run trained on {trained_on})"))
    latest_start = status.runs[0].start_time if status.runs else status.start_time
    for report in drifts if spec.retrain.on_drift else ():
        detected = report.detected_time
        if detected is not None and (latest_start is None or detected > latest_start):
            fired.append(Trigger(
                RunTrigger.DRIFT, f"drift/{report.deployment}/{detected.isoformat()}",
                f"ModelDeployment {report.deployment} reports drift of model {report.model} "
                f"version {report.version} since {detected.isoformat()} "
                f"(in {', '.join(report.features) or 'its inputs'})"))
    return Due(fired, last_schedule)


@dataclass(frozen=True)
class Hold:
    """A limit that holds automatic runs back: which, and until when in words."""

    reason: str
    message: str


def hold(spec: TrainingJobSpec, status: TrainingJobStatus, at: datetime) -> Hold | None:
    """Whether a limit holds an automatic run back at `at`: a run still running (Forbid;
    Replace deletes it instead), the cooldown since the last run started, or the runs
    started in the last 24 hours."""
    latest = status.runs[0] if status.runs else None
    if (latest is not None and latest.phase == RunPhase.RUNNING
            and spec.concurrency_policy == ConcurrencyPolicy.FORBID):
        return Hold(RUNNING, f"run {latest.number} is still running "
                    f"(spec.concurrencyPolicy: {spec.concurrency_policy.value})")
    retrain = spec.retrain
    if latest is not None and retrain.min_interval is not None:
        until = latest.start_time + parse_duration(retrain.min_interval)
        if at < until:
            return Hold(COOLDOWN, f"spec.retrain.minInterval {retrain.min_interval}: run "
                        f"{latest.number} started at {latest.start_time.isoformat()}; no "
                        f"automatic run before {until.isoformat()}")
    if retrain.max_runs_per_day is not None:
        today = [run for run in status.runs if run.start_time > at - DAY]
        if len(today) >= retrain.max_runs_per_day:
            until = min(run.start_time for run in today) + DAY
            return Hold(DAILY_LIMIT, f"spec.retrain.maxRunsPerDay {retrain.max_runs_per_day}: "
                        f"{len(today)} runs started in the last 24 hours; no automatic run "
                        f"before {until.isoformat()}")
    return None
