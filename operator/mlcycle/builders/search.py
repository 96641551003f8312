"""The worker Job of a search, its study's name and place, and the TrainingJob that trains
the best trial once more.

A search runs as one Indexed Job of `parallelism` long-lived workers: each Pod pays the
start-up (image, imports, reading the data) once and then runs trial after trial of the
shared study, instead of one Pod per trial. Deleting the TrainingJob deletes the Job through
its owner reference, and a short grace period stops its Pods within seconds.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from datetime import datetime
from typing import Any

from mlcycle.builders.common import Manifest, child_name
from mlcycle.builders.trainingjob import ResolvedDataset, build_training_job
from mlcycle.objects import ObjectMeta, TrainingJob
from mlcycle.settings import Settings
from mlcycle_contract import constants, environment
from mlcycle_contract.api.search import TrialSummary

COMPONENT_SEARCH = "search"
GRACE_SECONDS = 5  # a worker's in-flight trial ends Failed on SIGTERM; the Pod goes at once


def study_name(training_job: TrainingJob, dataset_version: str, run: str = "") -> str:
    """The study of this search: the same while only maxTrials, parallelism, the failure
    budget, goal, timeout, resources or registration change (the study continues), a new one
    when anything that shapes the trials changes (space, algorithms, sampler, data, ...), on
    a manual request, and for each run a trigger starts (`run`: the latest such run's
    identity, kept by the runs after it, so that a raised budget continues its study)."""
    spec, metadata = training_job.spec, training_job.metadata
    assert spec.search is not None
    shaping: dict[str, Any] = {
        "uid": metadata.uid,
        "requestedAt": metadata.requested_at,
        "dataset": dataset_version,
        "search": spec.search.to_wire() | {key: None for key in (
            "maxTrials", "parallelism", "maxFailedTrials", "timeout", "goal")},
        "algorithm": spec.algorithm,
        "objective": spec.effective_objective.to_wire(),
        "validation": spec.validation.to_wire() | {"gates": None},
        "preprocessing": spec.preprocessing.to_wire(),
        "task": spec.task,
    }
    if run:  # absent for the runs before any trigger, whose studies keep their names
        shaping["run"] = run
    digest = hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:16]
    return f"study-{digest}"


def study_uri(metadata: ObjectMeta, study: str, settings: Settings) -> str:
    """The study's prefix, inside the namespace's own prefix of the data bucket."""
    return (f"s3://{settings.data_bucket}/datasets/{metadata.namespace}/searches/"
            f"{metadata.name}-{metadata.uid}/{study}/")


def search_workers_name(metadata: ObjectMeta, run: str = "") -> str:
    """One worker Job per generation and request (a new one when maxTrials or parallelism
    is raised), and per run a trigger starts within them (`run`: its identity)."""
    return child_name(metadata.name, COMPONENT_SEARCH, metadata.uid, metadata.generation,
                      metadata.requested_at, *filter(None, [run]))


def build_search_workers(training_job: TrainingJob, dataset: ResolvedDataset, study: str,
                         deadline: datetime | None, settings: Settings,
                         name: str | None = None) -> Manifest:
    """The worker Job `name` (the generation's unless given: a triggered run's)."""
    search = training_job.spec.search
    assert search is not None
    job = build_training_job(training_job, dataset, settings)
    job["metadata"]["name"] = name or search_workers_name(training_job.metadata)
    for labels in (job["metadata"]["labels"], job["spec"]["template"]["metadata"]["labels"]):
        labels[constants.LABEL_COMPONENT] = COMPONENT_SEARCH
    pod = job["spec"]["template"]["spec"]
    pod["terminationGracePeriodSeconds"] = GRACE_SECONDS
    (container,) = pod["containers"]
    container["args"] = [environment.COMMAND_SEARCH]
    container["env"] += [
        {"name": environment.SEARCH_STUDY.name, "value": study},
        {"name": environment.SEARCH_STUDY_URI.name,
         "value": study_uri(training_job.metadata, study, settings)},
        {"name": environment.SEARCH_DEADLINE.name,
         "value": deadline.isoformat() if deadline else ""},
    ]
    # Indexed: worker i seeds its sampler with seed + i. A worker that dies is replaced
    # (backoffLimit), and its running trial ends Failed when its heartbeat stops.
    job["spec"] |= {"completionMode": "Indexed", "completions": search.parallelism,
                    "parallelism": search.parallelism}
    return job


def best_trial_training(training_job: TrainingJob, best: TrialSummary) -> TrainingJob:
    """The TrainingJob as if it named the best trial's algorithm and hyperparameters: the
    normal training path trains, validates, registers it and moves the alias once."""
    hyperparameters: dict[str, Any] = {**training_job.spec.hyperparameters,
                                       **json.loads(best.hyperparameters)}
    spec = training_job.spec.model_copy(update={
        "algorithm": best.algorithm, "hyperparameters": hyperparameters, "search": None})
    return replace(training_job, spec=spec)
