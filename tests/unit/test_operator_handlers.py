"""What the handlers decide without a cluster: the kopf indices behind cross-resource lookups,
and which Job's events may set an owner's status."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import kopf

from mlcycle.builders.trainingjob import training_job_name
from mlcycle.handlers import deployments_by_alias, training_jobs_by_dataset
from mlcycle.objects import Invalid, TrainingJob, parse_training_job
from mlcycle.reconcile.trainingjob import reports_on
from mlcycle_contract import constants
from mlcycle_contract.api.trainingjob import TrainingJobPhase


def body(kind: str, spec: dict[str, Any], generation: int = 1) -> kopf.Body:
    return kopf.Body({
        "apiVersion": constants.API_GROUP_VERSION, "kind": kind,
        "metadata": {"name": "iris", "namespace": "ml", "uid": "u1", "generation": generation},
        "spec": spec,
    })


TRAINING_SPEC = {"datasetRef": {"name": "flowers"}, "algorithm": "random_forest_classifier"}


def test_training_jobs_are_indexed_by_the_dataset_they_train_on() -> None:
    assert training_jobs_by_dataset(body=body("TrainingJob", TRAINING_SPEC)) == {
        ("ml", "flowers"): "iris"}
    assert training_jobs_by_dataset(body=body("TrainingJob", {"datasetRef": {}})) is None


def test_only_model_deployments_that_follow_an_alias_are_indexed() -> None:
    following = body("ModelDeployment", {"model": {"name": "iris-model", "alias": "champion"}})
    assert deployments_by_alias(body=following) == {("iris-model", "champion"): ("ml", "iris")}
    pinned = body("ModelDeployment", {"model": {"name": "iris-model", "version": 3}})
    assert deployments_by_alias(body=pinned) is None


def test_only_the_current_generations_unfinished_job_reports_on_a_training_job() -> None:
    parsed = parse_training_job(body("TrainingJob", TRAINING_SPEC, generation=2))
    assert not isinstance(parsed, Invalid)
    training_job: TrainingJob = parsed
    current = training_job_name(training_job.metadata)
    earlier = training_job_name(training_job.metadata.model_copy(update={"generation": 1}))
    assert reports_on(training_job, current)
    assert not reports_on(training_job, earlier)
    finished = training_job.status.model_copy(
        update={"job_name": current, "phase": TrainingJobPhase.SUCCEEDED})
    assert not reports_on(replace(training_job, status=finished), current)
