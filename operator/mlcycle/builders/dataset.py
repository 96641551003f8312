"""The ingestion Job of a Dataset."""

from __future__ import annotations

import json

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


def ingest_job_name(metadata: ObjectMeta) -> str:
    """One Job per (uid, generation, re-ingestion request): a spec change makes a new one."""
    return child_name(metadata.name, "ingest", metadata.uid, metadata.generation,
                      metadata.requested_at)


def build_ingest_job(dataset: Dataset, settings: Settings) -> Manifest:
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
    ]
    return trainer_job(
        name=ingest_job_name(dataset.metadata),
        owner=dataset,
        job_labels=labels(constants.LABEL_DATASET, name, constants.COMPONENT_INGEST),
        image=settings.trainer_image,
        command=environment.COMMAND_INGEST,
        env=env,
        settings=settings,
        backoff_limit=2,
    )
