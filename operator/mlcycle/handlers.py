"""Every kopf registration, in one place; each parses its object once and delegates at once to
a per-kind reconciler.

Status is written with `kube.patch_status` from every path (create, resume, Job and Pod events),
never through kopf's handler results, which strict schemas would prune. Cross-resource
lookups go through kopf indices, kept up to date from the watch streams kopf runs anyway.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import kopf
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

from mlcycle import (
    alias_board,
    first_statuses,
    health,
    kopf_bodies,
    kube,
    metrics,
    registry,
    tenancy,
    triggers,
)
from mlcycle.builders.common import CONTAINER_NAME
from mlcycle.objects import (
    Invalid,
    ModelDeployment,
    Object,
    TrainingJob,
    parse_dataset,
    parse_model_deployment,
    parse_training_job,
)
from mlcycle.reconcile import dataset as datasets
from mlcycle.reconcile import modeldeployment as model_deployments
from mlcycle.reconcile import search as searches
from mlcycle.reconcile import trainingjob as training_jobs
from mlcycle.reconcile.common import Manifest, Outcome, accepted
from mlcycle.settings import Settings
from mlcycle_contract import constants
from mlcycle_contract.api.dataset import DatasetPhase
from mlcycle_contract.api.modeldeployment import ModelDeploymentPhase, ModelDeploymentStatus
from mlcycle_contract.api.trainingjob import TrainingJobPhase, TrainingJobStatus

logger = logging.getLogger(__name__)
SETTINGS = Settings.from_env()
GROUP, VERSION = constants.API_GROUP, constants.API_VERSION
# First statuses are written on threads of their own: kopf's are busy with reconciles when a
# burst of objects arrives (in bench.scale's burst of 100, 4 threads gave p50 345-355 ms, 10
# gave 259 ms). Each reconcile first waits while any first status is being written.
FIRST_STATUSES = first_statuses.FirstStatuses(ThreadPoolExecutor(10, "first-status"))
MANAGED = {constants.LABEL_MANAGED_BY: constants.MANAGED_BY}

# kopf indices: key -> the names of the objects under it.
DatasetKey = tuple[str, str]  # (namespace, Dataset name)
AliasKey = tuple[str, str]  # (registered model name, alias)
ObjectKey = tuple[str, str]  # (namespace, name)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    prefix = constants.KOPF_ANNOTATION_PREFIX
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=prefix)
    settings.persistence.diffbase_storage = kopf_bodies.diffbase_storage()
    settings.posting.level = logging.WARNING  # our own Events mark the transitions
    settings.watching.server_timeout = 120
    settings.watching.client_timeout = 150


@contextlib.contextmanager
def retry_transient() -> Iterator[None]:
    """API conflicts, throttling, server errors and lost connections: try again later."""
    try:
        yield
    except ApiException as error:
        if error.status in (409, 429) or (error.status or 0) >= 500:
            raise kopf.TemporaryError(f"Kubernetes API: {error.status} {error.reason}",
                                      delay=5) from error
        raise
    except (urllib3.exceptions.HTTPError, ConnectionError) as error:
        raise kopf.TemporaryError(f"unreachable: {error}", delay=10) from error
    except registry.MlflowError as error:
        raise kopf.TemporaryError(f"MLflow registry: {error.message}", delay=10) from error
    except tenancy.TenancyUnavailable as error:
        raise kopf.TemporaryError(f"namespace credentials: {error}", delay=10) from error


def write(resource: Object[Any], outcome: Outcome[Any] | None, if_unchanged: bool = False,
          ) -> None:
    """Events before the status: a crash between the two posts them again on the retry,
    which their deterministic names count on one Event, where the other order would lose
    them (the retry finds the transition already written)."""
    if outcome is None:
        return
    for event in outcome.events:
        kube.post_event(resource, event.type, event.reason, event.message)
    kube.patch_status(resource, outcome.status.to_wire(), if_unchanged)


# Indices and the conditions gauge are async: pure and quick, kopf runs them on its loop
# instead of handing every watch event of every object to a worker thread.
@kopf.index(GROUP, VERSION, constants.TRAINING_JOB.plural)
async def training_jobs_by_dataset(body: kopf.Body, **_: Any) -> dict[DatasetKey, str] | None:
    """The TrainingJobs that wait for the Dataset they train on (no phase yet, or Pending):
    those to wake when it is ingested."""
    training_job = parse_training_job(body)
    if isinstance(training_job, Invalid) or training_job.status.phase not in (
            None, TrainingJobPhase.PENDING):
        return None
    metadata = training_job.metadata
    return {(metadata.namespace, training_job.spec.dataset_ref.name): metadata.name}


@kopf.index(GROUP, VERSION, constants.MODEL_DEPLOYMENT.plural)
async def deployments_by_alias(body: kopf.Body, **_: Any) -> dict[AliasKey, ObjectKey] | None:
    """ModelDeployments that follow an alias: those to roll out when a TrainingJob moves it."""
    deployment = parse_model_deployment(body)
    if isinstance(deployment, Invalid) or deployment.spec.model.alias is None:
        return None
    model, metadata = deployment.spec.model, deployment.metadata
    return {(model.name, deployment.spec.model.alias): (metadata.namespace, metadata.name)}


@kopf.index(GROUP, VERSION, constants.MODEL_DEPLOYMENT.plural)
async def drift_by_training_job(body: kopf.Body,
                                **_: Any) -> dict[str, triggers.DriftReport] | None:
    """ModelDeployments monitoring drift, by the TrainingJob that produced the version they
    serve: what spec.retrain.onDrift retrains on (kept from the watch, with their status)."""
    deployment = parse_model_deployment(body)
    report = None if isinstance(deployment, Invalid) else triggers.drift_report(deployment)
    return None if report is None else {report.training_job_uid: report}


@kopf.on.resume(GROUP, VERSION, constants.DATASET.plural)
@kopf.on.create(GROUP, VERSION, constants.DATASET.plural)
@kopf.on.update(GROUP, VERSION, constants.DATASET.plural)
def dataset_changed(body: kopf.Body, **_: Any) -> None:
    FIRST_STATUSES.wait_until_written()
    dataset = parse_dataset(body)
    with metrics.reconciling(constants.DATASET.kind), retry_transient():
        write(dataset, datasets.reconcile_dataset(dataset, SETTINGS))


def refreshing(body: kopf.Body, **_: Any) -> bool:
    """kopf's filter (on the raw body): a Dataset with spec.refreshInterval."""
    return bool((body.get("spec") or {}).get("refreshInterval"))


@kopf.timer(GROUP, VERSION, constants.DATASET.plural, interval=10, initial_delay=10,
            when=refreshing)
def dataset_refresh(body: kopf.Body, **_: Any) -> None:
    """spec.refreshInterval: start the refresh check that is due; its Job's end reaches the
    status through job_event."""
    dataset = parse_dataset(body)
    with metrics.reconciling(constants.DATASET.kind), retry_transient():
        write(dataset, datasets.refresh_dataset(dataset, SETTINGS))


@kopf.on.resume(GROUP, VERSION, constants.TRAINING_JOB.plural)
@kopf.on.create(GROUP, VERSION, constants.TRAINING_JOB.plural)
@kopf.on.update(GROUP, VERSION, constants.TRAINING_JOB.plural)
def training_job_changed(body: kopf.Body, **_: Any) -> None:
    FIRST_STATUSES.wait_until_written()
    training_job = parse_training_job(body)
    with metrics.reconciling(constants.TRAINING_JOB.kind), retry_transient():
        write(training_job, reconcile_training(training_job))


def reconcile_training(training_job: TrainingJob | Invalid[TrainingJobStatus],
                       ) -> Outcome[TrainingJobStatus] | None:
    """A search, or one training run."""
    if not isinstance(training_job, Invalid) and searches.is_search(training_job):
        return searches.reconcile_search(training_job, SETTINGS)
    return training_jobs.reconcile_training_job(training_job, SETTINGS)


def searching(body: kopf.Body, **_: Any) -> bool:
    """kopf's filter (on the raw body, before parsing): a search that is running."""
    running = (body.get("status") or {}).get("phase") == TrainingJobPhase.RUNNING.value
    return running and bool((body.get("spec") or {}).get("search"))


@kopf.timer(GROUP, VERSION, constants.TRAINING_JOB.plural, interval=5, initial_delay=5,
            when=searching)
def training_job_search_progress(body: kopf.Body, **_: Any) -> None:
    """A running search's trials, which its workers record in MLflow without a Kubernetes
    event, reach the status on this tick. Written only over the status the tick read: a run
    a retrain tick started since must not be undone (409, and the next try reads it)."""
    training_job = parse_training_job(body)
    if isinstance(training_job, Invalid):
        return
    with metrics.reconciling(constants.TRAINING_JOB.kind), retry_transient():
        write(training_job, searches.reconcile_search(training_job, SETTINGS),
              if_unchanged=True)


def retraining(body: kopf.Body, **_: Any) -> bool:
    """kopf's filter (on the raw body): a TrainingJob with an automatic trigger."""
    spec = body.get("spec") or {}
    retrain = spec.get("retrain") or {}
    return bool(spec.get("schedule") or retrain.get("onNewData") or retrain.get("onDrift"))


# kopf passes indices as keyword arguments; its TimerFn protocol does not list them.
@kopf.timer(GROUP, VERSION, constants.TRAINING_JOB.plural,  # type: ignore[arg-type]
            interval=10, initial_delay=10, when=retraining)
def training_job_retrain(body: kopf.Body,
                         drift_by_training_job: kopf.Index[str, triggers.DriftReport],
                         **_: Any) -> None:
    """spec.schedule, spec.retrain.onNewData and onDrift: start the run a trigger asks for (a
    search's: a new study), or say which limit holds it back. Written only over the status
    the tick read: a run's end that a Job event wrote since must not be undone (409, and the
    next try reads it)."""
    training_job = parse_training_job(body)
    drifts = list(drift_by_training_job.get(training_job.metadata.uid, []))
    retrain = (searches.retrain_search if not isinstance(training_job, Invalid)
               and searches.is_search(training_job) else training_jobs.retrain)
    with metrics.reconciling(constants.TRAINING_JOB.kind), retry_transient():
        write(training_job, retrain(training_job, SETTINGS, drifts), if_unchanged=True)


def job_reports(body: kopf.Body, type: str | None, **_: Any) -> bool:
    """kopf's filter (in its event loop, not a worker thread): a Job with a status. One with
    none yet has nothing to report: its creator wrote the owner's status (or, killed before
    that, does so when it reconciles the owner again). A deleted one reports nothing."""
    return type != "DELETED" and bool(body.get("status"))


# kopf passes indices as keyword arguments; its WatchingFn protocol does not list them.
@kopf.on.event("batch", "v1", "jobs", labels=MANAGED,  # type: ignore[arg-type]
               when=job_reports)
def job_event(body: kopf.Body, training_jobs_by_dataset: kopf.Index[DatasetKey, str],
              deployments_by_alias: kopf.Index[AliasKey, ObjectKey], **_: Any) -> None:
    """A Job we own changed: recompute its owner's status from it, and wake what waited."""
    job_changed(dict(body), training_jobs_by_dataset, deployments_by_alias)


# A search's workers stay on their Job's events and the progress tick: one worker's end is
# not its study's.
ENDED_BY_POD = (constants.COMPONENT_INGEST, constants.COMPONENT_TRAIN)
# The Job controller's finalizer on a Pod it has yet to count in the Job's status.
JOB_TRACKING = "batch.kubernetes.io/job-tracking"


def workload_succeeded(body: kopf.Body, **_: Any) -> bool:
    """kopf's filter (on the raw body): a Pod of an ingestion or training Job whose workload
    exited 0 (what its termination message holds, `job_state` checks), not yet counted by
    the Job controller. Once counted, the Job's own event reports the end at once; and the
    Pods listed when the operator starts, long since counted, cost it nothing."""
    metadata = body.get("metadata", {})
    labels = metadata.get("labels") or {}
    if (labels.get(constants.LABEL_COMPONENT) not in ENDED_BY_POD
            or JOB_TRACKING not in (metadata.get("finalizers") or [])):
        return False
    return any(status.get("name") == CONTAINER_NAME
               and ((status.get("state") or {}).get("terminated") or {}).get("exitCode") == 0
               for status in (body.get("status") or {}).get("containerStatuses") or [])


# kopf passes indices as keyword arguments; its WatchingFn protocol does not list them.
@kopf.on.event("", "v1", "pods", labels=MANAGED,  # type: ignore[arg-type]
               when=workload_succeeded)
def pod_event(body: kopf.Body, type: str | None,
              training_jobs_by_dataset: kopf.Index[DatasetKey, str],
              deployments_by_alias: kopf.Index[AliasKey, ObjectKey], **_: Any) -> None:
    """A Pod of a Job we own ended its work: its owner's status as for the completed Job,
    read as the API holds it, without waiting for the Job controller to mark it Complete
    (about 2 s). The Job's own event reports the same later, which then changes nothing.
    A Job being deleted (replaced, or its owner deleted) reports nothing more."""
    job_name = None if type == "DELETED" else pod_job_name(dict(body))
    if job_name is None:
        return
    with retry_transient():
        job = kube.read_job(body.metadata.namespace or "", job_name)
    if job is not None and not job["metadata"].get("deletionTimestamp"):
        job_changed(job, training_jobs_by_dataset, deployments_by_alias)


def pod_job_name(pod: Manifest) -> str | None:
    """Pure: the name of the Job that controls the Pod."""
    return next((str(ref["name"]) for ref in pod["metadata"].get("ownerReferences") or []
                 if ref.get("kind") == "Job" and ref.get("controller")), None)


def job_changed(job: Manifest, training_jobs_by_dataset: kopf.Index[DatasetKey, str],
                deployments_by_alias: kopf.Index[AliasKey, ObjectKey]) -> None:
    """The status of the Job's owner, from the Job and its Pods."""
    owner = next((ref for ref in job["metadata"].get("ownerReferences") or []
                  if ref.get("controller")), None)
    if owner is None:
        return
    with metrics.reconciling(owner["kind"]), retry_transient():
        if owner["kind"] == constants.DATASET.kind:
            ingestion_changed(job, owner["name"], training_jobs_by_dataset)
        elif owner["kind"] == constants.TRAINING_JOB.kind:
            training_changed(job, owner["name"], deployments_by_alias)


def read_again_on_conflict(report: Callable[[], None], attempts: int = 3) -> None:
    """`report` writes only over the status it read (if_unchanged): on a conflict, it reads
    the owner again and decides again. A Job's end reaches its owner from two events (its
    Pod's, then its own), and a Job that concurrencyPolicy Replace is replacing may report
    from a read made just before the new run's record was written: whichever writes second
    finds the owner moved on, and then has nothing to do."""
    for attempt in range(attempts):
        try:
            report()
            return
        except ApiException as error:
            if error.status != 409 or attempt == attempts - 1:
                raise


def ingestion_changed(job: Manifest, owner_name: str,
                      training_jobs_by_dataset: kopf.Index[DatasetKey, str]) -> None:
    read_again_on_conflict(lambda: report_ingestion(job, owner_name, training_jobs_by_dataset))


def report_ingestion(job: Manifest, owner_name: str,
                     training_jobs_by_dataset: kopf.Index[DatasetKey, str]) -> None:
    namespace, job_name = job["metadata"]["namespace"], job["metadata"]["name"]
    body = kube.read_custom(constants.DATASET, namespace, owner_name)
    dataset = parse_dataset(body) if body else None
    if dataset is None or isinstance(dataset, Invalid):
        return
    if datasets.reports_on(dataset, job_name):
        outcome = datasets.dataset_outcome(dataset, job, kube.job_pods(namespace, job_name))
    elif datasets.reports_on_refresh(dataset, job_name):
        refreshed = datasets.refresh_outcome(dataset, job, kube.job_pods(namespace, job_name))
        if refreshed is None:
            return
        outcome = refreshed
    elif datasets.ingested_by(dataset, job_name):
        # Recorded by the Dataset's own reconcile (on a restart, from the Pod's end): a
        # TrainingJob that read the Dataset just before still waits (wake: only if Pending).
        outcome = None
    else:
        return
    if outcome is not None:
        write(dataset, outcome, if_unchanged=True)
    if (outcome.status if outcome else dataset.status).phase == DatasetPhase.READY:
        for name in training_jobs_by_dataset.get((namespace, owner_name), []):
            wake_training_job(namespace, name)


def training_changed(job: Manifest, owner_name: str,
                     deployments_by_alias: kopf.Index[AliasKey, ObjectKey]) -> None:
    """The TrainingJob's status from its Job, written only over the status it was computed
    from (`read_again_on_conflict`)."""
    read_again_on_conflict(lambda: report_training(job, owner_name, deployments_by_alias))


def report_training(job: Manifest, owner_name: str,
                    deployments_by_alias: kopf.Index[AliasKey, ObjectKey]) -> None:
    namespace, job_name = job["metadata"]["namespace"], job["metadata"]["name"]
    body = kube.read_custom(constants.TRAINING_JOB, namespace, owner_name)
    training_job = parse_training_job(body) if body else None
    if training_job is None or isinstance(training_job, Invalid):
        return
    if searches.is_search(training_job) and searches.is_workers(job):
        write(training_job, searches.reconcile_search(training_job, SETTINGS, job),
              if_unchanged=True)
        return
    if training_jobs.replaced_job(training_job.status.runs, job):
        kube.delete_job(namespace, job_name)
        return
    if not training_jobs.reports_on(training_job, job_name):
        return
    pods = kube.job_pods(namespace, job_name)
    outcome = training_jobs.training_outcome(training_job, job, pods, SETTINGS)
    write(training_job, outcome, if_unchanged=True)
    model, alias = outcome.status.model, training_job.spec.registry.alias
    if outcome.status.phase == TrainingJobPhase.SUCCEEDED and model and alias:
        for key in deployments_by_alias.get((model.name, alias), []):
            wake_model_deployment(*key)


def wake_training_job(namespace: str, name: str) -> None:
    """A TrainingJob that was waiting for its Dataset can start now."""
    body = kube.read_custom(constants.TRAINING_JOB, namespace, name)
    training_job = parse_training_job(body) if body else None
    if training_job is not None and training_job.status.phase in (None,
                                                                  TrainingJobPhase.PENDING):
        write(training_job, reconcile_training(training_job))


def wake_model_deployment(namespace: str, name: str) -> None:
    """The alias a ModelDeployment follows may have moved: roll out now, not at the next poll."""
    body = kube.read_custom(constants.MODEL_DEPLOYMENT, namespace, name)
    if body is not None:
        deployment = parse_model_deployment(body)
        write(deployment, model_deployments.reconcile_model_deployment(deployment, SETTINGS))


@kopf.on.resume(GROUP, VERSION, constants.MODEL_DEPLOYMENT.plural)
@kopf.on.create(GROUP, VERSION, constants.MODEL_DEPLOYMENT.plural)
@kopf.on.update(GROUP, VERSION, constants.MODEL_DEPLOYMENT.plural)
def model_deployment_changed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    FIRST_STATUSES.wait_until_written()
    deployment = parse_model_deployment(body)
    with metrics.reconciling(constants.MODEL_DEPLOYMENT.kind), retry_transient():
        write(deployment, model_deployments.reconcile_model_deployment(deployment, SETTINGS))
    memo["last_registry_check"] = time.monotonic()


# One read of the registry's aliases per poll interval, whatever the number of deployments.
ALIASES = alias_board.SharedBoard(lambda: alias_board.read_aliases(SETTINGS.operator_tracking_uri))


def parsed_once(body: kopf.Body, memo: kopf.Memo,
                ) -> ModelDeployment | Invalid[ModelDeploymentStatus]:
    """The ModelDeployment, parsed again only when its resourceVersion moved: at rest, most
    of the timer's ticks have nothing due, and parsing was most of their cost."""
    version = body.get("metadata", {}).get("resourceVersion")
    if memo.get("parsed_version") != version or "parsed" not in memo:
        memo["parsed"], memo["parsed_version"] = parse_model_deployment(body), version
    parsed: ModelDeployment | Invalid[ModelDeploymentStatus] = memo["parsed"]
    return parsed


@kopf.timer(GROUP, VERSION, constants.MODEL_DEPLOYMENT.plural, interval=5, initial_delay=5)
def model_deployment_tick(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """CD: when the alias moves in the registry, the new version rolls out. Then, with
    spec.monitoring.drift, every spec.monitoring.checkIntervalSeconds the replicas' drift
    windows, added up, reach status.drift and the Drifted condition. One timer, so the two
    never write the whole status from the same old state at once (the later one would undo
    the other's change)."""
    deployment = parsed_once(body, memo)
    if isinstance(deployment, Invalid):
        return
    clock = time.monotonic()
    if (deployment.spec.model.alias is not None and clock - memo.get("last_registry_check", 0.0)
            >= deployment.spec.poll_interval_seconds):
        memo["last_registry_check"] = clock
        with metrics.reconciling(constants.MODEL_DEPLOYMENT.kind), retry_transient():
            followed = model_deployments.follow_alias(deployment, memo.get("followed"), ALIASES,
                                                      SETTINGS, clock)
            if followed is not None:
                write(deployment, followed[0])
                memo["followed"] = followed[1]
                deployment = replace(deployment, status=followed[0].status)
    if (deployment.spec.monitoring.drift and clock - memo.get("last_drift_check", 0.0)
            >= deployment.spec.monitoring.check_interval_seconds):
        memo["last_drift_check"] = clock
        with metrics.reconciling(constants.MODEL_DEPLOYMENT.kind), retry_transient():
            write(deployment, model_deployments.check_drift(deployment, SETTINGS))


@kopf.on.event("apps", "v1", "deployments", labels=MANAGED)
def deployment_event(body: kopf.Body, type: str | None, **_: Any) -> None:
    """A serving Deployment changed (pods became ready, a rollout advanced)."""
    if type == "DELETED":
        return
    deployment = dict(body)
    name = deployment["metadata"]["labels"].get(constants.LABEL_MODEL_DEPLOYMENT)
    if not name:
        return
    with metrics.reconciling(constants.MODEL_DEPLOYMENT.kind), retry_transient():
        found = kube.read_custom(constants.MODEL_DEPLOYMENT,
                                 deployment["metadata"]["namespace"], name)
        owner = parse_model_deployment(found) if found else None
        if owner is None or not model_deployments.reports_deployment_events(owner, SETTINGS):
            return
        write(owner, model_deployments.deployment_outcome(owner, deployment))


FIRST_PHASES = {
    constants.DATASET.plural: DatasetPhase.PENDING,
    constants.TRAINING_JOB.plural: TrainingJobPhase.PENDING,
    constants.MODEL_DEPLOYMENT.plural: ModelDeploymentPhase.PROGRESSING,
}
PARSERS: dict[str, Callable[[kopf.Body], Object[Any]]] = {
    constants.DATASET.plural: parse_dataset,
    constants.TRAINING_JOB.plural: parse_training_job,
    constants.MODEL_DEPLOYMENT.plural: parse_model_deployment,
}
# One watch handler per kind doing both jobs: kopf's dispatch of each event to a handler
# (its kwargs, its outcome) cost more CPU under load than either job does.
@kopf.on.event(GROUP, VERSION, constants.DATASET.plural, id="dataset_observed")
@kopf.on.event(GROUP, VERSION, constants.TRAINING_JOB.plural, id="training_job_observed")
@kopf.on.event(GROUP, VERSION, constants.MODEL_DEPLOYMENT.plural,
               id="model_deployment_observed")
async def observed(body: kopf.Body, type: str | None, resource: kopf.Resource,
                   **_: Any) -> None:
    """Every event of our kinds: the conditions gauge follows it, and a new object gets
    its first status."""
    conditions_observed(body, type)
    acknowledge(body, type, resource)


def conditions_observed(body: kopf.Body, type: str | None) -> None:
    """Every object's conditions as the API holds them, for the mlcycle_conditions gauge:
    the watch lists every object at start, and a deleted one leaves the count."""
    metadata = body.metadata
    key = (str(body.get("kind", "")), metadata.namespace or "", metadata.name or "")
    if type == "DELETED":
        metrics.CONDITIONS.forget(key)
    else:
        metrics.CONDITIONS.observe(key, body.get("status"))


def acknowledge(body: kopf.Body, type: str | None, resource: kopf.Resource) -> None:
    """A new object whose spec parses gets its first status at once (a spec that does not
    parse gets the reconcile's refusal instead). Not awaited: the event loop goes on to the
    next event while the object's reconcile, in a worker thread, waits for it; only one write
    over the version read can land."""
    if type == "DELETED" or body.get("status"):
        return
    parsed = PARSERS[resource.plural](body)
    if isinstance(parsed, Invalid):
        return
    status = accepted(parsed, FIRST_PHASES[resource.plural]).to_wire()
    FIRST_STATUSES.write(kube.acknowledge, parsed, status)


@kopf.on.probe(id="watchers")
async def watchers_alive(**_: Any) -> list[str]:
    """/healthz answers 500, and Kubernetes restarts the Pod, while a watcher is dead (what
    is and is not detected: mlcycle.health). Permanent: kopf would retry a failing probe,
    and the endpoint would hang instead of answering."""
    report = health.watcher_report(
        health.expected_watchers(health.WATCHED_RESOURCES, SETTINGS.namespaces),
        health.running_tasks())
    if not report.alive:
        raise kopf.PermanentError(f"watchers not running: {', '.join(report.missing)}")
    return list(report.running)
