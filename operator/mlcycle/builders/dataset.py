"""The ingestion Job of a Dataset, and its refresh checks (spec.refreshInterval).

A refresh check is the ingestion Job itself, given the source's validators from the last
download (ETag, Last-Modified): the trainer asks the source first (a conditional GET over
http, a HEAD over s3) and stops there, downloading nothing, when it has not changed.

Why a Job and not the operator: the check runs where the ingestion runs, as the namespace's
Pod with the namespace's own storage credentials and behind the same address guard
(`mlcycle_trainer.guarded_http`). The operator holds MinIO's root and MLflow's admin
credentials and sits next to their admin APIs; asking user-chosen URLs from there, or HEADing
s3 objects with root's rights, would let a Dataset probe what its namespace may not reach
(the answer's status and ETag would land in its status). A Pod start costs a few seconds per
check, for a check that runs at most once a minute.
"""

from __future__ import annotations

import json
from datetime import datetime

from mlcycle.builders.common import (
    Manifest,
    child_name,
    labels,
    owner_environment,
    storage_environment,
    trainer_job,
)
from mlcycle.objects import Dataset, ObjectMeta
from mlcycle.settings import Settings
from mlcycle_contract import constants, environment

# A check's result is read when its Job ends; a check Job deleted unread is simply run again.
REFRESH_JOB_TTL_SECONDS = 300


def ingest_job_name(metadata: ObjectMeta) -> str:
    """One Job per (uid, generation, re-ingestion request): a spec change makes a new one."""
    return child_name(metadata.name, "ingest", metadata.uid, metadata.generation,
                      metadata.requested_at)


def refresh_job_name(metadata: ObjectMeta, since: datetime) -> str:
    """One check per (generation, request, last check): recording a check names the next."""
    return child_name(metadata.name, "refresh", metadata.uid, metadata.generation,
                      metadata.requested_at, since.isoformat())


def build_ingest_job(dataset: Dataset, settings: Settings) -> Manifest:
    """The generation's ingestion: downloads the source whatever it says."""
    return _ingest_job(dataset, settings, ingest_job_name(dataset.metadata), [])


def build_refresh_job(dataset: Dataset, settings: Settings, since: datetime) -> Manifest:
    """A refresh check: ingests only if the source changed since its last download."""
    validators = dataset.status.source
    env = [{"name": environment.SOURCE_VALIDATORS.name,
            "value": json.dumps(validators.to_wire(), sort_keys=True) if validators else ""}]
    job = _ingest_job(dataset, settings, refresh_job_name(dataset.metadata, since), env)
    job["spec"]["ttlSecondsAfterFinished"] = min(settings.job_ttl_seconds,
                                                 REFRESH_JOB_TTL_SECONDS)
    return job


def _ingest_job(dataset: Dataset, settings: Settings, job_name: str,
                extra_env: list[Manifest]) -> Manifest:
    name = dataset.metadata.name
    env = [
        *owner_environment(dataset, settings.trainer_image),
        *storage_environment(settings),
        {"name": environment.DATASET_SPEC.name,
         "value": json.dumps(dataset.spec.to_wire(), sort_keys=True)},
        {"name": environment.SOURCE_DENY_CIDRS.name,
         "value": ",".join(settings.source_deny_networks)},
        {"name": environment.SOURCE_ALLOW_CIDRS.name,
         "value": ",".join(settings.source_allow_cidrs)},
        *extra_env,
    ]
    return trainer_job(
        name=job_name,
        owner=dataset,
        job_labels=labels(constants.LABEL_DATASET, name, constants.COMPONENT_INGEST),
        image=settings.trainer_image,
        command=environment.COMMAND_INGEST,
        env=env,
        settings=settings,
        backoff_limit=2,
    )
