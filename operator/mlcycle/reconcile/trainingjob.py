"""TrainingJob: check what only the operator can check, pin the dataset version, run one
training Job per generation (or retraining request), and report what the trainer reported."""

from __future__ import annotations

from mlcycle import kube, registry, tenancy, unsupported
from mlcycle.builders.trainingjob import (
    ResolvedDataset,
    build_training_job,
    training_job_name,
)
from mlcycle.objects import Invalid, Object, TrainingJob, parse_dataset
from mlcycle.reconcile.common import (
    IMAGE_NOT_ALLOWED,
    INVALID_RESULT,
    INVALID_SPEC,
    MODEL_ACCESS_DENIED,
    Manifest,
    Outcome,
    condition,
    image_refusal,
    job_state,
    now,
    outcome,
    with_ready,
)
from mlcycle.settings import Settings
from mlcycle_contract import constants
from mlcycle_contract.api.algorithms import ALGORITHMS, hyperparameter_problem
from mlcycle_contract.api.common import ConditionType, set_condition
from mlcycle_contract.api.trainingjob import (
    MlflowRun,
    TrainingJobConditionType,
    TrainingJobPhase,
    TrainingJobStatus,
)
from mlcycle_contract.results import TrainingResult

FINISHED = (TrainingJobPhase.SUCCEEDED, TrainingJobPhase.FAILED)
# Reasons to wait rather than fail: the Dataset may yet appear or finish its ingestion.
WAITING = ("DatasetNotFound", "DatasetNotReady")


class NotRunnable(Exception):
    """The spec cannot run as it stands: a reason and a message naming the field."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def reconcile_training_job(training_job: TrainingJob | Invalid[TrainingJobStatus],
                           settings: Settings) -> Outcome[TrainingJobStatus] | None:
    """Ensure this generation's training Job exists and report its state; None if done."""
    if isinstance(training_job, Invalid):
        return refused(training_job, INVALID_SPEC, training_job.problem)
    job_name = training_job_name(training_job.metadata)
    if not reports_on(training_job, job_name):
        return None  # finished, whatever became of its Job (TTL) and Dataset since
    namespace = training_job.metadata.namespace
    try:
        check_spec(training_job, settings)
        job_manifest = build_training_job(training_job, resolve_dataset(training_job), settings)
        check_model_owned(training_job, tenancy.ensure_tenant(namespace, settings), settings)
    except NotRunnable as problem:
        return refused(training_job, problem.reason, problem.message)
    job = kube.ensure_job(namespace, job_manifest)
    return training_outcome(training_job, job, kube.job_pods(namespace, job_name), settings)


def reports_on(training_job: TrainingJob, job_name: str) -> bool:
    """Whether this Job's events set the TrainingJob's status: it is the Job of the current
    generation and request, and its end is not recorded yet."""
    status = training_job.status
    return training_job_name(training_job.metadata) == job_name and not (
        status.job_name == job_name and status.phase in FINISHED)


def refused(training_job: Object[TrainingJobStatus], reason: str,
            message: str) -> Outcome[TrainingJobStatus]:
    """No Job for this generation: Pending while the Dataset is awaited, else Failed."""
    status, generation = training_job.status, training_job.metadata.generation
    return outcome(status.conditions, status.model_copy(update={
        "phase": TrainingJobPhase.PENDING if reason in WAITING else TrainingJobPhase.FAILED,
        "observed_generation": generation,
        "conditions": with_ready(status.conditions, False, reason, message, generation),
    }))


def check_spec(training_job: TrainingJob, settings: Settings) -> None:
    """The semantic checks the CRD schema cannot make."""
    spec = training_job.spec
    fields = unsupported.training_job_unsupported(spec)
    if fields:
        raise NotRunnable(unsupported.REASON, unsupported.unsupported_message(fields))
    image_problem = image_refusal(spec.image, settings)
    if image_problem:
        raise NotRunnable(IMAGE_NOT_ALLOWED, image_problem)
    assert spec.algorithm is not None  # the model guarantees it without search
    problem = hyperparameter_problem(ALGORITHMS[spec.algorithm], spec.hyperparameters)
    if problem:
        raise NotRunnable("InvalidHyperparameters", problem)


def check_model_owned(training_job: TrainingJob, tenant: tenancy.Tenant,
                      settings: Settings) -> None:
    """The registered model is new or this namespace's: MLflow's permissions say which."""
    name = training_job.spec.registry.model_name or training_job.metadata.name
    try:
        registry.check_registrable(settings.operator_tracking_uri, tenant.registry_user, name)
    except registry.ModelAccessDenied as denied:
        raise NotRunnable(MODEL_ACCESS_DENIED, f"spec.registry.modelName: {denied}") from None


def resolve_dataset(training_job: TrainingJob) -> ResolvedDataset:
    """The dataset version to train on: the one asked for, else the one already pinned for
    this run, else the Dataset's current version."""
    namespace, status = training_job.metadata.namespace, training_job.status
    name = training_job.spec.dataset_ref.name
    body = kube.read_custom(constants.DATASET, namespace, name)
    if body is None:
        raise NotRunnable("DatasetNotFound",
                          f"spec.datasetRef.name: Dataset {name!r} does not exist in "
                          f"namespace {namespace!r}")
    dataset = parse_dataset(body)
    if isinstance(dataset, Invalid):
        raise NotRunnable("DatasetNotReady", f"Dataset {name!r} has an invalid spec")
    target, split, history = dataset.spec.target, dataset.spec.split, dataset.status.history
    wanted = training_job.spec.dataset_ref.version or (
        status.dataset_version if status.phase == TrainingJobPhase.RUNNING else None)
    if wanted is None:
        if not dataset.status.version or not dataset.status.snapshot_uri:
            raise NotRunnable("DatasetNotReady",
                              f"Dataset {name!r} has no ingested version yet")
        return ResolvedDataset(name, dataset.status.version, dataset.status.snapshot_uri,
                               target, split)
    for record in history:
        if record.version == wanted:
            return ResolvedDataset(name, record.version, record.snapshot_uri, target, split)
    known = ", ".join(r.version for r in history) or "none yet"
    raise NotRunnable("DatasetVersionNotFound",
                      f"spec.datasetRef.version: Dataset {name!r} has no version {wanted!r} "
                      f"(known: {known})")


def training_outcome(training_job: TrainingJob, job: Manifest, pods: list[Manifest],
                     settings: Settings) -> Outcome[TrainingJobStatus]:
    """Pure: the TrainingJob's status given its training Job and that Job's pods."""
    old, generation = training_job.status, training_job.metadata.generation
    state = job_state(job, pods)
    labels = job["metadata"].get("labels") or {}
    status = old.model_copy(update={
        "job_name": state.name,
        "dataset_version": labels.get(constants.LABEL_DATASET_VERSION, old.dataset_version),
        "start_time": old.start_time if old.job_name == state.name and old.start_time
        else now(),
        "observed_generation": generation,
    })
    if not state.finished:
        return outcome(old.conditions, status.model_copy(update={
            "phase": TrainingJobPhase.RUNNING,
            "conditions": with_ready(status.conditions, False, "Training",
                                     f"Job {state.name} is training", generation),
        }))
    result = state.result(TrainingResult) if state.succeeded else None
    if result is None or isinstance(result, str):
        reason, message = (INVALID_RESULT, result) if result else state.failure()
        return outcome(old.conditions, status.model_copy(update={
            "phase": TrainingJobPhase.FAILED,
            "completion_time": now(),
            "conditions": with_ready(status.conditions, False, reason, message, generation),
        }))
    return outcome(old.conditions, succeeded(status, result, settings, generation))


def succeeded(status: TrainingJobStatus, result: TrainingResult, settings: Settings,
              generation: int) -> TrainingJobStatus:
    gates, model, run = result.gates, result.model, result.mlflow
    registered = f"model {model.name} version {model.version}"
    if result.alias is not None:
        moved = "moved to it" if result.alias.moved else "not moved"
        registered += f"; alias {result.alias.name} {moved}"
    objective = result.objective
    conditions = status.conditions
    for type_, ok, reason, message in (
        (TrainingJobConditionType.VALIDATED, gates.passed,
         "GatesPassed" if gates.passed else "GatesFailed",
         "all gates passed" if gates.passed else "; ".join(gates.failed)),
        (TrainingJobConditionType.REGISTERED, True, "ModelRegistered", registered),
        (ConditionType.READY, True, "Succeeded",
         f"{objective.metric.value} = {objective.value:.4f}" if objective else registered),
    ):
        conditions = set_condition(conditions, condition(type_, ok, reason, message, generation))
    return status.model_copy(update={
        "phase": TrainingJobPhase.SUCCEEDED,
        "completion_time": now(),
        "metrics": result.metrics,
        "objective": objective,
        "model": model,
        "mlflow": MlflowRun(
            run_id=run.run_id, experiment_id=run.experiment_id,
            run_url=f"{settings.ui_url}/#/experiments/{run.experiment_id}/runs/{run.run_id}"),
        "conditions": conditions,
    })
