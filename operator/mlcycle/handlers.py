"""Every kopf registration, in one place; each delegates at once to a per-kind reconciler.

Status is written with `kube.patch_status` from every path (create, resume, Job events),
never through kopf's handler results, which strict schemas would prune.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import kopf
import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

from mlcycle import kube, registry
from mlcycle.reconcile.common import Manifest, Outcome, post_events
from mlcycle.reconcile.dataset import dataset_outcome, reconcile_dataset
from mlcycle.reconcile.modeldeployment import deployment_outcome, reconcile_model_deployment
from mlcycle.reconcile.trainingjob import reconcile_training_job, training_outcome
from mlcycle.settings import Settings
from mlcycle_contract import constants
from mlcycle_contract.constants import ResourceNames

SETTINGS = Settings.from_env()
GROUP, VERSION = constants.API_GROUP, constants.API_VERSION


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    prefix = constants.KOPF_ANNOTATION_PREFIX
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=prefix)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=prefix, key="last-handled-configuration")
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
    except registry.MlflowException as error:
        raise kopf.TemporaryError(f"MLflow registry: {error.message}", delay=10) from error


def write(names: ResourceNames, body: Manifest, outcome: Outcome | None) -> None:
    if outcome is None:
        return
    metadata = body["metadata"]
    kube.patch_status(names, metadata["namespace"], metadata["name"], outcome.status)
    post_events(body, outcome.events)


@kopf.on.resume(GROUP, VERSION, constants.DATASET.plural)
@kopf.on.create(GROUP, VERSION, constants.DATASET.plural)
@kopf.on.update(GROUP, VERSION, constants.DATASET.plural)
def dataset_changed(body: kopf.Body, **_: Any) -> None:
    with retry_transient():
        write(constants.DATASET, dict(body), reconcile_dataset(dict(body), SETTINGS))


@kopf.on.resume(GROUP, VERSION, constants.TRAINING_JOB.plural)
@kopf.on.create(GROUP, VERSION, constants.TRAINING_JOB.plural)
@kopf.on.update(GROUP, VERSION, constants.TRAINING_JOB.plural)
def training_job_changed(body: kopf.Body, **_: Any) -> None:
    with retry_transient():
        write(constants.TRAINING_JOB, dict(body), reconcile_training_job(dict(body), SETTINGS))


# Kind of a Job's owner -> (its resource names, the Job label naming it, its status from a Job).
JOB_OWNERS: dict[str, tuple[ResourceNames, str, Callable[[Manifest, Manifest, list[Manifest]],
                                                        Outcome]]] = {
    constants.DATASET.kind: (constants.DATASET, constants.LABEL_DATASET, dataset_outcome),
    constants.TRAINING_JOB.kind: (
        constants.TRAINING_JOB, constants.LABEL_TRAINING_JOB,
        lambda owner, job, pods: training_outcome(owner, job, pods, SETTINGS)),
}


@kopf.on.event("batch", "v1", "jobs",
               labels={constants.LABEL_MANAGED_BY: constants.MANAGED_BY})
def job_event(body: kopf.Body, type: str | None, **_: Any) -> None:
    """A Job we own changed: recompute its owner's status from it."""
    if type == "DELETED":
        return
    job = dict(body)
    owner_kind = next((ref["kind"] for ref in job["metadata"].get("ownerReferences") or []
                       if ref.get("controller")), None)
    if owner_kind not in JOB_OWNERS:
        return
    names, label, outcome_of = JOB_OWNERS[owner_kind]
    namespace, job_name = job["metadata"]["namespace"], job["metadata"]["name"]
    with retry_transient():
        owner = kube.read_custom(names, namespace, job["metadata"]["labels"][label])
        if owner is None or (owner.get("status") or {}).get("jobName") != job_name:
            return  # deleted, an older Job's late event, or the create handler has yet to write
        outcome = outcome_of(owner, job, kube.job_pods(namespace, job_name))
        write(names, owner, outcome)
        if owner_kind == constants.DATASET.kind and outcome.status.get("phase") == "Ready":
            wake_training_jobs(namespace, owner["metadata"]["name"])


def wake_training_jobs(namespace: str, dataset_name: str) -> None:
    """TrainingJobs that were waiting for this Dataset can start now."""
    for training_job in kube.list_custom(constants.TRAINING_JOB, namespace):
        waiting = (training_job.get("status") or {}).get("phase") in (None, "Pending")
        if waiting and training_job["spec"]["datasetRef"]["name"] == dataset_name:
            write(constants.TRAINING_JOB, training_job,
                  reconcile_training_job(training_job, SETTINGS))


@kopf.on.resume(GROUP, VERSION, constants.MODEL_DEPLOYMENT.plural)
@kopf.on.create(GROUP, VERSION, constants.MODEL_DEPLOYMENT.plural)
@kopf.on.update(GROUP, VERSION, constants.MODEL_DEPLOYMENT.plural)
def model_deployment_changed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    with retry_transient():
        write(constants.MODEL_DEPLOYMENT, dict(body),
              reconcile_model_deployment(dict(body), SETTINGS))
    memo["last_registry_check"] = time.monotonic()


@kopf.timer(GROUP, VERSION, constants.MODEL_DEPLOYMENT.plural, interval=5, initial_delay=5)
def model_deployment_follow_alias(body: kopf.Body, spec: kopf.Spec, memo: kopf.Memo,
                                  **_: Any) -> None:
    """CD: when the alias moves in the registry, the new version rolls out."""
    if not spec.get("model", {}).get("alias"):
        return
    interval = spec.get("pollIntervalSeconds", SETTINGS.registry_poll_seconds)
    if time.monotonic() - memo.get("last_registry_check", 0.0) < interval:
        return
    memo["last_registry_check"] = time.monotonic()
    with retry_transient():
        write(constants.MODEL_DEPLOYMENT, dict(body),
              reconcile_model_deployment(dict(body), SETTINGS))


@kopf.on.event("apps", "v1", "deployments",
               labels={constants.LABEL_MANAGED_BY: constants.MANAGED_BY})
def deployment_event(body: kopf.Body, type: str | None, **_: Any) -> None:
    """A serving Deployment changed (pods became ready, a rollout advanced)."""
    if type == "DELETED":
        return
    deployment = dict(body)
    name = deployment["metadata"]["labels"].get(constants.LABEL_MODEL_DEPLOYMENT)
    if not name:
        return
    with retry_transient():
        owner = kube.read_custom(constants.MODEL_DEPLOYMENT,
                                 deployment["metadata"]["namespace"], name)
        if owner is not None:
            write(constants.MODEL_DEPLOYMENT, owner, deployment_outcome(owner, deployment))
