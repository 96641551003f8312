"""The training Job of a TrainingJob."""

from __future__ import annotations

import json
from dataclasses import dataclass

from mlcycle import contract
from mlcycle.builders.common import (
    Manifest,
    child_name,
    labels,
    owner_environment,
    storage_environment,
    trainer_job,
)
from mlcycle.settings import Settings
from mlcycle_contract import constants
from mlcycle_contract.api.trainingjob import TrainingJobSpec


@dataclass(frozen=True)
class ResolvedDataset:
    """The dataset version a run trains on, pinned when the run starts."""

    name: str
    version: str
    snapshot_uri: str
    target: str
    test_fraction: float  # the Dataset's split, the default holdout of its TrainingJobs


def training_job_name(training_job: Manifest, trigger: str) -> str:
    metadata = training_job["metadata"]
    return child_name(metadata["name"], "train", metadata["uid"], metadata["generation"], trigger)


def experiment_name(training_job: Manifest) -> str:
    metadata = training_job["metadata"]
    return f"{metadata['namespace']}/{metadata['name']}"


def build_training_job(
    training_job: Manifest,
    spec: TrainingJobSpec,
    dataset: ResolvedDataset,
    settings: Settings,
    trigger: str = "",
) -> Manifest:
    name = training_job["metadata"]["name"]
    image = spec.image or settings.trainer_image
    if spec.validation.holdout_fraction is None:
        validation = spec.validation.model_copy(
            update={"holdout_fraction": dataset.test_fraction})
        spec = spec.model_copy(update={"validation": validation})
    job_labels = labels(constants.LABEL_TRAINING_JOB, name, constants.COMPONENT_TRAIN)
    job_labels[constants.LABEL_DATASET_VERSION] = dataset.version
    env = [
        *owner_environment(training_job, image),
        *storage_environment(settings),
        {"name": contract.ENV_TRAINING_SPEC, "value": json.dumps(spec.to_wire(), sort_keys=True)},
        {"name": contract.ENV_DATASET_NAME, "value": dataset.name},
        {"name": contract.ENV_DATASET_VERSION, "value": dataset.version},
        {"name": contract.ENV_DATASET_URI, "value": dataset.snapshot_uri},
        {"name": contract.ENV_DATASET_TARGET, "value": dataset.target},
        {"name": contract.ENV_EXPERIMENT_NAME, "value": experiment_name(training_job)},
    ]
    return trainer_job(
        name=training_job_name(training_job, trigger),
        owner=training_job,
        job_labels=job_labels,
        image=image,
        command=contract.COMMAND_TRAIN,
        env=env,
        settings=settings,
        backoff_limit=spec.backoff_limit,
        active_deadline_seconds=spec.active_deadline_seconds,
        resource_spec=spec.resources,
    )
