"""Dataset: one ingestion Job per generation (or re-ingestion request); status from its result.

The ingestion Job fetches, validates and normalises the data, hashes it into a version and
writes an immutable snapshot; this module only decides when to run it and turns what it
reported into status.
"""

from __future__ import annotations

from mlcycle import kube, tenancy, unsupported
from mlcycle.builders.dataset import build_ingest_job, ingest_job_name
from mlcycle.objects import Dataset, Invalid, Object
from mlcycle.reconcile.common import (
    INVALID_RESULT,
    INVALID_SPEC,
    Manifest,
    Outcome,
    job_state,
    now,
    outcome,
    with_ready,
)
from mlcycle.settings import Settings
from mlcycle_contract.api.dataset import (
    HISTORY_LIMIT,
    DatasetPhase,
    DatasetStatus,
    DatasetVersionRecord,
)
from mlcycle_contract.results import IngestionResult

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
    job = kube.ensure_job(namespace, job_manifest)
    return dataset_outcome(dataset, job, kube.job_pods(namespace, job_name))


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
    state = job_state(job, pods)
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
    return outcome(dataset.status.conditions, ingested(status, result, generation))


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
        "observed_generation": generation,
        "conditions": with_ready(status.conditions, True, "Ingested",
                                 f"version {result.version}: {result.rows} rows, "
                                 f"{result.columns} columns", generation),
    })
