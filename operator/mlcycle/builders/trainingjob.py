"""The training Job of a TrainingJob."""

from __future__ import annotations

import json
from dataclasses import dataclass

from mlcycle.builders.common import (
    Manifest,
    child_name,
    labels,
    owner_environment,
    storage_environment,
    trainer_job,
)
from mlcycle.objects import ObjectMeta, TrainingJob
from mlcycle.settings import Settings
from mlcycle_contract import constants, environment
from mlcycle_contract.api.dataset import SplitSpec


@dataclass(frozen=True)
class ResolvedDataset:
    """The dataset version a run trains on, pinned when the run starts."""

    name: str
    version: str
    snapshot_uri: str
    target: str
    split: SplitSpec  # the holdout of its TrainingJobs, unless spec.validation overrides it


def training_job_name(metadata: ObjectMeta, trigger_key: str = "") -> str:
    """One Job per (uid, generation, retraining request): a spec change makes a new one; and
    one per automatic trigger (a schedule's fire time, a new dataset version) within those."""
    return child_name(metadata.name, "train", metadata.uid, metadata.generation,
                      metadata.requested_at, *filter(None, [trigger_key]))


def experiment_name(metadata: ObjectMeta) -> str:
    return f"{metadata.namespace}/{metadata.name}"


def _json(value: Manifest) -> str:
    return json.dumps(value, sort_keys=True)


def build_training_job(
    training_job: TrainingJob, dataset: ResolvedDataset, settings: Settings,
    job_name: str | None = None,
) -> Manifest:
    """The run's training Job; `job_name` that of an automatic run, else the generation's."""
    spec, metadata = training_job.spec, training_job.metadata
    image = spec.image or settings.trainer_image
    job_labels = labels(constants.LABEL_TRAINING_JOB, metadata.name, constants.COMPONENT_TRAIN)
    job_labels[constants.LABEL_DATASET_VERSION] = dataset.version
    env = [
        *owner_environment(training_job, image),
        *storage_environment(settings),
        {"name": environment.TRAINING_SPEC.name, "value": _json(spec.to_wire())},
        {"name": environment.DATASET_NAME.name, "value": dataset.name},
        {"name": environment.DATASET_VERSION.name, "value": dataset.version},
        {"name": environment.DATASET_URI.name, "value": dataset.snapshot_uri},
        {"name": environment.DATASET_TARGET.name, "value": dataset.target},
        {"name": environment.DATASET_SPLIT.name, "value": _json(dataset.split.to_wire())},
        {"name": environment.MLFLOW_EXPERIMENT_NAME.name, "value": experiment_name(metadata)},
    ]
    return trainer_job(
        name=job_name or training_job_name(metadata),
        owner=training_job,
        job_labels=job_labels,
        image=image,
        command=environment.COMMAND_TRAIN,
        env=env,
        settings=settings,
        backoff_limit=spec.backoff_limit,
        active_deadline_seconds=spec.active_deadline_seconds,
        resource_spec=spec.resources,
    )
