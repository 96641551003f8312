"""Dataset: one ingestion Job per generation (or re-ingestion request), then, with
spec.refreshInterval, a refresh check Job each interval; status from what they report.

The ingestion Job fetches, validates and normalises the data, hashes it into a version and
writes an immutable snapshot; this module only decides when to run it and turns what it
reported into status. A refresh check is the same Job given the last download's validators
(why a Job and not the operator: `mlcycle.builders.dataset`): an unchanged source downloads
nothing, the same content under new headers makes no new version (the content hash decides),
changed content makes one. The Dataset stays Ready on its current version throughout.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from mlcycle import kube, tenancy, unsupported
from mlcycle.builders.dataset import (
    build_ingest_job,
    build_refresh_job,
    ingest_job_name,
    refresh_job_name,
)
from mlcycle.objects import Dataset, Invalid, Object
from mlcycle.reconcile.common import (
    INVALID_RESULT,
    INVALID_SPEC,
    Event,
    Manifest,
    Outcome,
    condition,
    job_state,
    now,
    outcome,
    with_ready,
)
from mlcycle.settings import Settings
from mlcycle_contract.api.common import Condition, find_condition, parse_duration, set_condition
from mlcycle_contract.api.dataset import (
    HISTORY_LIMIT,
    DatasetConditionType,
    DatasetPhase,
    DatasetSpec,
    DatasetStatus,
    DatasetVersionRecord,
)
from mlcycle_contract.results import IngestionResult, SourceUnchangedResult

REFRESHED = DatasetConditionType.REFRESHED
NEVER_CHANGES = "NeverChanges"
SOURCE_UNCHANGED, SAME_CONTENT, NEW_VERSION = "SourceUnchanged", "SameContent", "NewVersion"
# A check Job's end is reported by its event; the timer reports it only when that is overdue.
EVENT_GRACE = timedelta(seconds=30)

FINISHED = (DatasetPhase.READY, DatasetPhase.FAILED)


def reconcile_dataset(dataset: Dataset | Invalid[DatasetStatus],
                      settings: Settings) -> Outcome[DatasetStatus] | None:
    """Ensure the ingestion Job of the current generation exists and report its state.

    None when there is nothing to do: this generation and trigger were already ingested.
    """
    if isinstance(dataset, Invalid):
        return refused(dataset, INVALID_SPEC, dataset.problem)
    fields = unsupported.dataset_unsupported(dataset.spec)
    if fields:
        return refused(dataset, unsupported.REASON, unsupported.unsupported_message(fields))
    job_manifest = build_ingest_job(dataset, settings)
    job_name = job_manifest["metadata"]["name"]
    if not reports_on(dataset, job_name):
        return None  # finished; its Job may since have been deleted by its TTL
    namespace = dataset.metadata.namespace
    tenancy.ensure_tenant(namespace, settings)
    return dataset_outcome(dataset, *kube.ensure_job_with_pods(namespace, job_manifest))


def reports_on(dataset: Dataset, job_name: str) -> bool:
    """Whether this Job's events set the Dataset's status: it is the Job of the current
    generation and request, and its end is not recorded yet."""
    status = dataset.status
    return ingest_job_name(dataset.metadata) == job_name and not (
        status.job_name == job_name and status.phase in FINISHED)


def refused(dataset: Object[DatasetStatus], reason: str, message: str,
            status: DatasetStatus | None = None) -> Outcome[DatasetStatus]:
    """Failed, with why: nothing runs for this generation, or its Job failed."""
    status, generation = status or dataset.status, dataset.metadata.generation
    return outcome(status.conditions, status.model_copy(update={
        "phase": DatasetPhase.FAILED,
        "observed_generation": generation,
        "conditions": with_ready(status.conditions, False, reason, message, generation),
    }))


def dataset_outcome(dataset: Dataset, job: Manifest,
                    pods: list[Manifest]) -> Outcome[DatasetStatus]:
    """Pure: the Dataset's status given its ingestion Job and that Job's pods."""
    generation = dataset.metadata.generation
    state = job_state(job, pods, (IngestionResult,))
    status = dataset.status.model_copy(update={"job_name": state.name})
    if not state.finished:
        return outcome(dataset.status.conditions, status.model_copy(update={
            "phase": DatasetPhase.INGESTING,
            "conditions": with_ready(status.conditions, None, "Ingesting",
                                     f"Job {state.name} is ingesting the data", generation),
        }))
    if not state.succeeded:
        return refused(dataset, *state.failure(), status=status)
    result = state.result(IngestionResult)
    if isinstance(result, str):
        return refused(dataset, INVALID_RESULT, result, status=status)
    status = ingested(status, result, generation)
    return outcome(dataset.status.conditions, status.model_copy(update={
        "conditions": refresh_condition(dataset.spec, status.conditions, generation)}))


def refresh_condition(spec: DatasetSpec, conditions: list[Condition],
                      generation: int) -> list[Condition]:
    """After a generation's ingestion: a builtin source with refreshInterval says it is never
    checked; without refreshInterval, no Refreshed condition is left from an earlier spec."""
    if spec.refresh_interval is None:
        return [c for c in conditions if c.type != REFRESHED]
    if spec.source.builtin is None:
        return conditions
    return set_condition(conditions, condition(
        REFRESHED, False, NEVER_CHANGES,
        f"spec.refreshInterval: the builtin source {spec.source.builtin.value!r} ships inside "
        "scikit-learn and never changes; it is not checked", generation))


def ingested(status: DatasetStatus, result: IngestionResult, generation: int) -> DatasetStatus:
    history = [record for record in status.history if record.version != result.version]
    history.insert(0, DatasetVersionRecord(version=result.version,
                                           snapshot_uri=result.snapshot_uri, rows=result.rows,
                                           created_at=now()))
    return status.model_copy(update={
        "phase": DatasetPhase.READY,
        "version": result.version,
        "snapshot_uri": result.snapshot_uri,
        "rows": result.rows,
        "columns": result.columns,
        "schema_": result.schema_,
        "profile": result.profile or status.profile,
        "history": history[:HISTORY_LIMIT],
        "last_ingestion_time": now(),
        "source": result.source or status.source,
        "observed_generation": generation,
        "conditions": with_ready(status.conditions, True, "Ingested",
                                 f"version {result.version}: {result.rows} rows, "
                                 f"{result.columns} columns", generation),
    })


# --- Refresh checks (spec.refreshInterval) --------------------------------------------------


def ingested_generation(dataset: Dataset) -> bool:
    """Whether this generation's (and request's) ingestion succeeded: checks start after it."""
    status = dataset.status
    return (status.phase == DatasetPhase.READY
            and status.job_name == ingest_job_name(dataset.metadata))


def ingested_by(dataset: Dataset, job_name: str) -> bool:
    """Whether this generation's ingestion succeeded, recorded from this Job's end."""
    return ingested_generation(dataset) and ingest_job_name(dataset.metadata) == job_name


def refresh_base(dataset: Dataset) -> datetime | None:
    """What the next check counts its interval from, when checks apply: the last check or
    download, whichever came later."""
    spec, status = dataset.spec, dataset.status
    if spec.refresh_interval is None or spec.source.builtin is not None or (
            not ingested_generation(dataset)):
        return None
    times = [t for t in (status.last_check_time, status.last_ingestion_time) if t is not None]
    return max(times, default=None)


def refresh_due(dataset: Dataset, at: datetime) -> datetime | None:
    """Pure: the base of the check due at `at`, or None when none is."""
    base = refresh_base(dataset)
    interval = dataset.spec.refresh_interval
    if base is None or interval is None or at < base + parse_duration(interval):
        return None
    return base


def reports_on_refresh(dataset: Dataset, job_name: str) -> bool:
    """Whether this Job is the check now due; once recorded, the next check has another name."""
    base = refresh_base(dataset)
    return base is not None and refresh_job_name(dataset.metadata, base) == job_name


def refresh_dataset(dataset: Dataset | Invalid[DatasetStatus],
                    settings: Settings) -> Outcome[DatasetStatus] | None:
    """A timer's tick: start the check that is due (its Job's end is reported through
    refresh_outcome), or say once that a builtin source is never checked."""
    if isinstance(dataset, Invalid):
        return None
    if dataset.spec.source.builtin is not None:
        return never_changes(dataset)
    base = refresh_due(dataset, now())
    if base is None:
        return None
    namespace = dataset.metadata.namespace
    tenancy.ensure_tenant(namespace, settings)
    job = kube.ensure_job(namespace, build_refresh_job(dataset, settings, base))
    name = job["metadata"]["name"]
    if ended_before(job, now() - EVENT_GRACE):  # its end went unreported: a missed event
        return refresh_outcome(dataset, job, kube.job_pods(namespace, name))
    if dataset.status.refresh_job_name == name:
        return None  # running, or just ended: the Job's event reports it
    return Outcome(dataset.status.model_copy(update={"refresh_job_name": name}))


def ended_before(job: Manifest, moment: datetime) -> bool:
    """Whether the Job ended (completed or failed) before `moment`."""
    ends = [c.get("lastTransitionTime") for c in (job.get("status") or {}).get("conditions") or []
            if c.get("type") in ("Complete", "Failed") and c.get("status") == "True"]
    return any(end and datetime.fromisoformat(end) < moment for end in ends)


def never_changes(dataset: Dataset) -> Outcome[DatasetStatus] | None:
    """The NeverChanges condition of a builtin source, unless it is there already."""
    status, generation = dataset.status, dataset.metadata.generation
    present = find_condition(status.conditions, REFRESHED)
    if not ingested_generation(dataset) or (
            present is not None and present.reason == NEVER_CHANGES):
        return None
    conditions = refresh_condition(dataset.spec, status.conditions, generation)
    return Outcome(status.model_copy(update={"conditions": conditions}))


def refresh_outcome(dataset: Dataset, job: Manifest,
                    pods: list[Manifest]) -> Outcome[DatasetStatus] | None:
    """Pure: what an ended check changes (None while it runs). Every check is recorded
    (status.lastCheckTime, the Refreshed condition) and posts an Event; only new content
    makes a new version. A failed check leaves the current version Ready."""
    state = job_state(job, pods, (SourceUnchangedResult, IngestionResult))
    if not state.finished:
        return None
    old, generation = dataset.status, dataset.metadata.generation
    status = old.model_copy(update={"last_check_time": now(), "refresh_job_name": state.name})
    current = f"version {old.version}"
    if not state.succeeded:
        reason, message = state.failure()
        return checked(status, False, reason, f"refresh check failed ({message}); {current} "
                       "stays current", generation)
    unchanged = state.result(SourceUnchangedResult)
    if not isinstance(unchanged, str):
        return checked(status, True, SOURCE_UNCHANGED,
                       f"{unchanged.evidence}: nothing downloaded; {current} stays current",
                       generation)
    result = state.result(IngestionResult)
    if isinstance(result, str):
        return checked(status, False, INVALID_RESULT, result, generation)
    downloaded = f"downloaded {result.downloaded_bytes or 0} bytes"
    if result.version == old.version:
        return checked(status.model_copy(update={
            "last_ingestion_time": now(), "source": result.source or old.source,
        }), True, SAME_CONTENT, f"the source's headers changed; {downloaded}, and the "
            f"content hashes to {current} as before: no new version", generation)
    return checked(ingested(status, result, generation), True, NEW_VERSION,
                   f"the source changed; {downloaded}: version {result.version} "
                   f"({result.rows} rows, {result.columns} columns) replaces {current}",
                   generation)


def checked(status: DatasetStatus, ok: bool, reason: str, message: str,
            generation: int) -> Outcome[DatasetStatus]:
    """A recorded check: the Refreshed condition and an Event saying what it found."""
    conditions = set_condition(status.conditions,
                               condition(REFRESHED, ok, reason, message, generation))
    return Outcome(status.model_copy(update={"conditions": conditions}),
                   [Event("Normal" if ok else "Warning", reason, message)])
