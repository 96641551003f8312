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
from mlcycle.settings import Settings
from mlcycle_contract import constants, environment
from mlcycle_contract.api.dataset import DatasetSpec


def ingest_job_name(dataset: Manifest, trigger: str) -> str:
    """One Job per (uid, generation, trigger): a spec change or a refresh makes a new one."""
    metadata = dataset["metadata"]
    return child_name(metadata["name"], "ingest", metadata["uid"], metadata["generation"], trigger)


def build_ingest_job(
    dataset: Manifest, spec: DatasetSpec, settings: Settings, trigger: str = ""
) -> Manifest:
    name = dataset["metadata"]["name"]
    env = [
        *owner_environment(dataset, settings.trainer_image),
        *storage_environment(settings),
        {"name": environment.DATASET_SPEC.name,
         "value": json.dumps(spec.to_wire(), sort_keys=True)},
    ]
    return trainer_job(
        name=ingest_job_name(dataset, trigger),
        owner=dataset,
        job_labels=labels(constants.LABEL_DATASET, name, constants.COMPONENT_INGEST),
        image=settings.trainer_image,
        command=environment.COMMAND_INGEST,
        env=env,
        settings=settings,
        backoff_limit=2,
    )
