"""What the handlers decide without a cluster: the kopf indices behind cross-resource lookups,
which Job's events may set an owner's status, and that a Job event's status computed from a
stale read never lands."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import replace
from typing import Any, TypeVar, cast

import kopf
import pytest
from kubernetes.client.exceptions import ApiException

from mlcycle import first_statuses, handlers
from mlcycle.builders.trainingjob import training_job_name
from mlcycle.handlers import deployments_by_alias, training_changed, training_jobs_by_dataset
from mlcycle.objects import Invalid, TrainingJob, parse_training_job
from mlcycle.reconcile.common import Outcome
from mlcycle.reconcile.trainingjob import reports_on
from mlcycle_contract import constants
from mlcycle_contract.api.trainingjob import TrainingJobPhase


def body(kind: str, spec: dict[str, Any], generation: int = 1) -> kopf.Body:
    return kopf.Body({
        "apiVersion": constants.API_GROUP_VERSION, "kind": kind,
        "metadata": {"name": "iris", "namespace": "ml", "uid": "u1", "generation": generation},
        "spec": spec,
    })


T = TypeVar("T")
TRAINING_SPEC = {"datasetRef": {"name": "flowers"}, "algorithm": "random_forest_classifier"}


def test_training_jobs_waiting_are_indexed_by_the_dataset_they_train_on() -> None:
    assert asyncio.run(training_jobs_by_dataset(body=body("TrainingJob", TRAINING_SPEC))) == {
        ("ml", "flowers"): "iris"}
    invalid = body("TrainingJob", {"datasetRef": {}})
    assert asyncio.run(training_jobs_by_dataset(body=invalid)) is None
    waiting = {**body("TrainingJob", TRAINING_SPEC), "status": {"phase": "Pending"}}
    assert asyncio.run(training_jobs_by_dataset(body=kopf.Body(waiting))) == {
        ("ml", "flowers"): "iris"}
    running = {**waiting, "status": {"phase": "Running"}}  # nothing to wake
    assert asyncio.run(training_jobs_by_dataset(body=kopf.Body(running))) is None


def test_only_model_deployments_that_follow_an_alias_are_indexed() -> None:
    following = body("ModelDeployment", {"model": {"name": "iris-model", "alias": "champion"}})
    assert asyncio.run(deployments_by_alias(body=following)) == {
        ("iris-model", "champion"): ("ml", "iris")}
    pinned = body("ModelDeployment", {"model": {"name": "iris-model", "version": 3}})
    assert asyncio.run(deployments_by_alias(body=pinned)) is None


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


def test_a_replaced_jobs_late_event_read_before_the_new_run_never_writes_over_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The old run's Job event read the TrainingJob before the Replace wrote the new run: its
    write is refused (409, the resourceVersion moved on), and read again the old Job no
    longer reports."""
    spec = {**TRAINING_SPEC, "concurrencyPolicy": "Replace"}
    old_job = training_job_name(parse_training_job(body("TrainingJob", spec)).metadata)
    before = {**body("TrainingJob", spec), "status": {
        "phase": "Running", "jobName": old_job, "runs": [
            {"number": 1, "trigger": "Created", "reason": "created", "phase": "Running",
             "jobName": old_job, "generation": 1, "startTime": "2026-12-01T10:00:00Z"}]}}
    before["metadata"] = {**before["metadata"], "resourceVersion": "41"}
    metadata = {**before["metadata"], "resourceVersion": "42",
                "annotations": {constants.ANNOTATION_REQUESTED_AT: "now"}}
    new_job = training_job_name(parse_training_job({**before, "metadata": metadata}).metadata)
    first = before["status"]["runs"][0]
    replaced = {**before, "metadata": metadata, "status": {
        "phase": "Running", "jobName": new_job, "runs": [
            {**first, "number": 2, "trigger": "Manual", "jobName": new_job, "request": "now"},
            {**first, "phase": "Replaced", "completionTime": "2026-12-01T10:01:00Z"}]}}
    reads = iter([before, replaced])
    written: list[tuple[str, bool]] = []

    def patch_status(resource: Any, status: dict[str, Any], if_unchanged: bool = False) -> None:
        written.append((resource.metadata.resource_version, if_unchanged))
        raise ApiException(status=409, reason="Conflict")

    monkeypatch.setattr(handlers.kube, "read_custom", lambda *_: next(reads))
    monkeypatch.setattr(handlers.kube, "job_pods", lambda *_: [])
    monkeypatch.setattr(handlers.kube, "patch_status", patch_status)
    monkeypatch.setattr(handlers.kube, "post_event", lambda *_: None)
    finished = {"metadata": {"name": old_job, "namespace": "ml"},
                "status": {"conditions": [{"type": "Failed", "status": "True"}]}}
    training_changed(finished, "iris", cast(kopf.Index[Any, Any], {}))
    assert written == [("41", True)]  # refused once; the second read found it replaced


def test_a_retrain_tick_writes_only_over_the_status_it_read(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A tick's body may predate a run's end that a Job event wrote: its status (a run
    started, one replaced) is sent with the resourceVersion it read."""
    written: list[tuple[str, bool]] = []
    monkeypatch.setattr(handlers.training_jobs, "retrain", lambda training_job, *_: Outcome(
        training_job.status.model_copy(update={"phase": TrainingJobPhase.RUNNING})))
    monkeypatch.setattr(handlers.kube, "patch_status", lambda resource, _, if_unchanged=False: (
        written.append((resource.metadata.resource_version, if_unchanged))))
    ticked = body("TrainingJob", {**TRAINING_SPEC, "schedule": "@daily"})
    ticked["metadata"]["resourceVersion"] = "7"
    handlers.training_job_retrain(ticked, cast(kopf.Index[str, Any], {}))
    assert written == [("7", True)]


def test_a_search_with_a_trigger_ticks_through_its_own_start_and_writes_over_what_it_read(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The retrain timer runs on searches too, and starts their runs as studies; the search's
    progress tick, which might have read the status before such a start, writes only over
    the status it read."""
    search = {"datasetRef": {"name": "flowers"}, "search": {"algorithms": ["svc"]},
              "retrain": {"onNewData": True}}
    assert handlers.retraining(body=body("TrainingJob", search))
    assert not handlers.retraining(body=body("TrainingJob", {**search, "retrain": {}}))
    ticks: list[str] = []

    def tick(name: str) -> Any:
        return lambda training_job, *_: (ticks.append(name), Outcome(training_job.status))[1]

    monkeypatch.setattr(handlers.searches, "retrain_search", tick("search retrain"))
    monkeypatch.setattr(handlers.searches, "reconcile_search", tick("search progress"))
    monkeypatch.setattr(handlers.training_jobs, "retrain", tick("training retrain"))
    written: list[tuple[str, bool]] = []
    monkeypatch.setattr(handlers.kube, "patch_status", lambda resource, _, if_unchanged=False: (
        written.append((resource.metadata.resource_version, if_unchanged))))
    ticked = body("TrainingJob", search)
    ticked["metadata"]["resourceVersion"] = "7"
    handlers.training_job_retrain(ticked, cast(kopf.Index[str, Any], {}))
    handlers.training_job_search_progress(ticked)
    assert ticks == ["search retrain", "search progress"]
    assert written == [("7", True), ("7", True)]


def test_a_job_event_before_the_job_has_a_status_stays_out_of_the_worker_threads(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The event of a Job just created: its creator wrote the owner's status already, and
    kopf's filter keeps it from a worker thread; with a status, the owner is read."""
    reads: list[str] = []
    monkeypatch.setattr(handlers.kube, "read_custom",
                        lambda names, namespace, name: reads.append(name))
    job = {"metadata": {"name": "iris-ingest-1", "namespace": "ml", "ownerReferences": [
        {"kind": "Dataset", "name": "iris", "controller": True}]}}
    started = cast(kopf.Body, {**job, "status": {"active": 1}})
    assert not handlers.job_reports(body=cast(kopf.Body, {**job, "status": {}}), type="ADDED")
    assert not handlers.job_reports(body=started, type="DELETED")
    assert handlers.job_reports(body=started, type="MODIFIED")
    no_index = cast(kopf.Index[Any, Any], {})
    handlers.job_event(started, no_index, no_index)
    assert reads == ["iris"]


def acknowledged(monkeypatch: pytest.MonkeyPatch, plural: str, given: kopf.Body,
                 type_: str | None = "ADDED") -> list[tuple[str, dict[str, Any]]]:
    """The (resourceVersion, status) first statuses the handler writes for one event."""
    written: list[tuple[str, dict[str, Any]]] = []
    monkeypatch.setattr(handlers.kube, "acknowledge", lambda resource, status: written.append(
        (resource.metadata.resource_version, status)))
    monkeypatch.setattr(handlers, "FIRST_STATUSES", first_statuses.FirstStatuses(Inline()))
    resource = kopf.Resource(constants.API_GROUP, constants.API_VERSION, plural)
    asyncio.run(handlers.observed(body=given, type=type_, resource=resource))
    return written


class Inline(Executor):
    """Runs each call as it is submitted: the written statuses are known when it returns."""

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        done: Future[T] = Future()
        done.set_result(fn(*args, **kwargs))
        return done


def test_a_new_object_gets_its_first_status_at_once_over_the_version_seen(
        monkeypatch: pytest.MonkeyPatch) -> None:
    new = body("TrainingJob", TRAINING_SPEC, generation=3)
    new = kopf.Body({**new, "metadata": {**new["metadata"], "resourceVersion": "7"}})
    [(version, status)] = acknowledged(monkeypatch, "trainingjobs", new)
    assert version == "7"
    assert (status["phase"], status["observedGeneration"]) == ("Pending", 3)
    [ready] = status["conditions"]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "Unknown", "Accepted")
    dataset = body("Dataset", {"source": {"builtin": "iris"}, "target": "species"})
    [(_, status)] = acknowledged(monkeypatch, "datasets", dataset)
    assert status["phase"] == "Pending"


def test_no_first_status_over_a_status_for_a_spec_that_does_not_parse_or_once_deleted(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with_status = kopf.Body({**body("TrainingJob", TRAINING_SPEC), "status": {"phase": "Running"}})
    assert acknowledged(monkeypatch, "trainingjobs", with_status) == []
    invalid = body("TrainingJob", {"datasetRef": {}})
    assert acknowledged(monkeypatch, "trainingjobs", invalid) == []
    assert acknowledged(monkeypatch, "trainingjobs", body("TrainingJob", TRAINING_SPEC),
                        type_="DELETED") == []
