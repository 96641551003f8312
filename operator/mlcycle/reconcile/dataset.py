"""Dataset: one ingestion Job per generation (or re-ingestion request); status from its result.

The ingestion Job fetches, validates and normalises the data, hashes it into a version and
writes an immutable snapshot; this module only decides when to run it and turns what it
reported into status.
"""

from __future__ import annotations

from pydantic import ValidationError

from mlcycle import kube
from mlcycle.builders.dataset import build_ingest_job
from mlcycle.reconcile.common import (
    JobState,
    Manifest,
    Outcome,
    job_state,
    now,
    outcome,
    spec_error,
    with_ready,
)
from mlcycle.settings import Settings
from mlcycle_contract import constants
from mlcycle_contract.api.dataset import (
    ColumnSchema,
    DatasetPhase,
    DatasetSpec,
    DatasetStatus,
    DatasetVersionRecord,
    ProfileSummary,
)

HISTORY_LIMIT = 20


def trigger(dataset: Manifest) -> str:
    """A user asks for a re-ingestion by setting the requested-at annotation to a new value."""
    annotations = dataset["metadata"].get("annotations") or {}
    return str(annotations.get(constants.ANNOTATION_REQUESTED_AT, ""))


def reconcile_dataset(dataset: Manifest, settings: Settings) -> Outcome | None:
    """Ensure the ingestion Job of the current generation exists and report its state.

    None when there is nothing to do: this generation and trigger were already ingested.
    """
    status = DatasetStatus.model_validate(dataset.get("status") or {})
    generation = dataset["metadata"]["generation"]
    try:
        spec = DatasetSpec.model_validate(dataset["spec"])
    except ValidationError as error:
        new = status.model_copy(update={
            "phase": DatasetPhase.FAILED,
            "observed_generation": generation,
            "conditions": with_ready(status.conditions, False, "InvalidSpec", spec_error(error),
                                     generation),
        })
        return outcome(status.conditions, new)
    job_manifest = build_ingest_job(dataset, spec, settings, trigger(dataset))
    job_name = job_manifest["metadata"]["name"]
    if status.job_name == job_name and status.phase in (DatasetPhase.READY, DatasetPhase.FAILED):
        return None  # finished; its Job may since have been deleted by its TTL
    namespace = dataset["metadata"]["namespace"]
    job = kube.ensure_job(namespace, job_manifest)
    return dataset_outcome(dataset, job, kube.job_pods(namespace, job_name))


def dataset_outcome(dataset: Manifest, job: Manifest, pods: list[Manifest]) -> Outcome:
    """Pure: the Dataset's status given its ingestion Job and that Job's pods."""
    status = DatasetStatus.model_validate(dataset.get("status") or {})
    generation = dataset["metadata"]["generation"]
    state = job_state(job, pods)
    status = status.model_copy(update={"job_name": job["metadata"]["name"]})
    if not state.finished:
        new = status.model_copy(update={
            "phase": DatasetPhase.INGESTING,
            "conditions": with_ready(status.conditions, None, "Ingesting",
                               f"Job {job['metadata']['name']} is ingesting the data",
                               generation),
        })
    elif state.succeeded:
        new = _ingested(status, state, generation)
    else:
        new = status.model_copy(update={
            "phase": DatasetPhase.FAILED,
            "observed_generation": generation,
            "conditions": with_ready(status.conditions, False, state.failure_reason,
                                     state.failure_message,
                               generation),
        })
    return outcome(status.conditions, new)


def _ingested(status: DatasetStatus, state: JobState, generation: int) -> DatasetStatus:
    result = state.result
    version, snapshot_uri, rows = result["version"], result["snapshotURI"], int(result["rows"])
    history = [record for record in status.history if record.version != version]
    history.insert(0, DatasetVersionRecord(
        version=version, snapshot_uri=snapshot_uri, rows=rows, created_at=now()))
    profile = result.get("profile")
    return status.model_copy(update={
        "phase": DatasetPhase.READY,
        "version": version,
        "snapshot_uri": snapshot_uri,
        "rows": rows,
        "columns": int(result["columns"]),
        "schema_": [ColumnSchema.model_validate(column) for column in result.get("schema", [])],
        "profile": ProfileSummary.model_validate(profile) if profile else status.profile,
        "history": history[:HISTORY_LIMIT],
        "last_ingestion_time": now(),
        "observed_generation": generation,
        "conditions": with_ready(status.conditions, True, "Ingested",
                           f"version {version}: {rows} rows, {result['columns']} columns",
                           generation),
    })


