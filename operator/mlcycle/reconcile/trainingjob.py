"""TrainingJob: check what only the operator can check, pin the dataset version, run one
training Job per generation (or retraining request), and report what the trainer reported."""

from __future__ import annotations

from pydantic import ValidationError

from mlcycle import kube
from mlcycle.algorithms import hyperparameter_problem
from mlcycle.builders.trainingjob import ResolvedDataset, build_training_job
from mlcycle.reconcile.common import (
    JobState,
    Manifest,
    Outcome,
    condition,
    job_state,
    now,
    outcome,
    spec_error,
    with_ready,
)
from mlcycle.settings import Settings
from mlcycle_contract import constants
from mlcycle_contract.api.common import ConditionType, set_condition
from mlcycle_contract.api.dataset import DatasetSpec, DatasetStatus
from mlcycle_contract.api.trainingjob import (
    MlflowRun,
    ObjectiveValue,
    RegisteredModelVersion,
    TrainingJobConditionType,
    TrainingJobPhase,
    TrainingJobSpec,
    TrainingJobStatus,
)

FINISHED = (TrainingJobPhase.SUCCEEDED, TrainingJobPhase.FAILED)


class NotRunnable(Exception):
    """The spec cannot run as it stands: a reason and a message naming the field."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def trigger(training_job: Manifest) -> str:
    annotations = training_job["metadata"].get("annotations") or {}
    return str(annotations.get(constants.ANNOTATION_REQUESTED_AT, ""))


def reconcile_training_job(training_job: Manifest, settings: Settings) -> Outcome | None:
    """Ensure this generation's training Job exists and report its state; None if done."""
    status = TrainingJobStatus.model_validate(training_job.get("status") or {})
    metadata = training_job["metadata"]
    generation = metadata["generation"]
    try:
        spec = check_spec(training_job)
        job_manifest = build_training_job(
            training_job, spec, resolve_dataset(training_job, spec, status), settings,
            trigger(training_job))
    except NotRunnable as problem:
        waiting = problem.reason in ("DatasetNotFound", "DatasetNotReady")
        new = status.model_copy(update={
            "phase": TrainingJobPhase.PENDING if waiting else TrainingJobPhase.FAILED,
            "observed_generation": generation,
            "conditions": with_ready(status.conditions, False, problem.reason, problem.message,
                                     generation),
        })
        return outcome(status.conditions, new)
    job_name = job_manifest["metadata"]["name"]
    if status.job_name == job_name and status.phase in FINISHED:
        return None  # finished; its Job may since have been deleted by its TTL
    job = kube.ensure_job(metadata["namespace"], job_manifest)
    return training_outcome(training_job, job, kube.job_pods(metadata["namespace"], job_name),
                            settings)


def check_spec(training_job: Manifest) -> TrainingJobSpec:
    """The semantic checks the CRD schema cannot make."""
    try:
        spec = TrainingJobSpec.model_validate(training_job["spec"])
    except ValidationError as error:
        raise NotRunnable("InvalidSpec", spec_error(error)) from error
    if spec.search is not None:
        raise NotRunnable("Unsupported", "spec.search: hyperparameter search is not "
                          "available in this version of the operator; remove spec.search")
    assert spec.algorithm is not None  # the model guarantees it without search
    problem = hyperparameter_problem(spec.algorithm, spec.hyperparameters)
    if problem:
        raise NotRunnable("InvalidHyperparameters", problem)
    return spec


def resolve_dataset(training_job: Manifest, spec: TrainingJobSpec,
                    status: TrainingJobStatus) -> ResolvedDataset:
    """The dataset version to train on: the one asked for, else the one already pinned for
    this run, else the Dataset's current version."""
    namespace = training_job["metadata"]["namespace"]
    name = spec.dataset_ref.name
    dataset = kube.read_custom(constants.DATASET, namespace, name)
    if dataset is None:
        raise NotRunnable("DatasetNotFound",
                          f"spec.datasetRef.name: Dataset {name!r} does not exist in "
                          f"namespace {namespace!r}")
    dataset_status = DatasetStatus.model_validate(dataset.get("status") or {})
    dataset_spec = DatasetSpec.model_validate(dataset["spec"])
    target, split = dataset_spec.target, dataset_spec.split
    wanted = spec.dataset_ref.version or (
        status.dataset_version if status.phase == TrainingJobPhase.RUNNING else None)
    if wanted is None:
        if not dataset_status.version or not dataset_status.snapshot_uri:
            raise NotRunnable("DatasetNotReady",
                              f"Dataset {name!r} has no ingested version yet")
        return ResolvedDataset(name, dataset_status.version, dataset_status.snapshot_uri, target,
                               split)
    for record in dataset_status.history:
        if record.version == wanted:
            return ResolvedDataset(name, record.version, record.snapshot_uri, target,
                                   split)
    known = ", ".join(r.version for r in dataset_status.history) or "none yet"
    raise NotRunnable("DatasetVersionNotFound",
                      f"spec.datasetRef.version: Dataset {name!r} has no version {wanted!r} "
                      f"(known: {known})")


def training_outcome(training_job: Manifest, job: Manifest, pods: list[Manifest],
                     settings: Settings) -> Outcome:
    """Pure: the TrainingJob's status given its training Job and that Job's pods."""
    status = TrainingJobStatus.model_validate(training_job.get("status") or {})
    generation = training_job["metadata"]["generation"]
    labels = job["metadata"].get("labels") or {}
    status = status.model_copy(update={
        "job_name": job["metadata"]["name"],
        "dataset_version": labels.get(constants.LABEL_DATASET_VERSION, status.dataset_version),
        "start_time": status.start_time if status.job_name == job["metadata"]["name"]
        and status.start_time else now(),
    })
    state = job_state(job, pods)
    if not state.finished:
        new = status.model_copy(update={
            "phase": TrainingJobPhase.RUNNING,
            "observed_generation": generation,
            "conditions": with_ready(status.conditions, False, "Training",
                                 f"Job {job['metadata']['name']} is training", generation),
        })
    elif state.succeeded:
        new = _succeeded(status, state, TrainingJobSpec.model_validate(training_job["spec"]),
                         settings, generation)
    else:
        new = status.model_copy(update={
            "phase": TrainingJobPhase.FAILED,
            "completion_time": now(),
            "observed_generation": generation,
            "conditions": with_ready(status.conditions, False, state.failure_reason,
                                     state.failure_message,
                                 generation),
        })
    return outcome(status.conditions, new)


def _succeeded(status: TrainingJobStatus, state: JobState, spec: TrainingJobSpec,
               settings: Settings, generation: int) -> TrainingJobStatus:
    result = state.result
    metrics = {name: float(value) for name, value in (result.get("metrics") or {}).items()}
    objective = spec.effective_objective
    model = result.get("model") or {}
    run = result.get("mlflow") or {}
    gates = result.get("gates") or {"passed": True, "failed": []}
    conditions = status.conditions
    registered = RegisteredModelVersion.model_validate(model) if model else None
    gate_message = "all gates passed" if gates.get("passed") else "; ".join(gates["failed"])
    for type_, ok, reason, message in (
        (TrainingJobConditionType.VALIDATED, bool(gates.get("passed")),
         "GatesPassed" if gates.get("passed") else "GatesFailed", gate_message),
        (TrainingJobConditionType.REGISTERED, registered is not None, "ModelRegistered",
         f"model {registered.name} version {registered.version}" if registered else "no model"),
        (ConditionType.READY, True, "Succeeded",
         f"{objective.metric.value} = {metrics.get(objective.metric.value, float('nan')):.4f}"),
    ):
        conditions = set_condition(conditions, condition(type_, ok, reason, message, generation))
    run_id = run.get("runId")
    return status.model_copy(update={
        "phase": TrainingJobPhase.SUCCEEDED,
        "completion_time": now(),
        "metrics": metrics,
        "objective": ObjectiveValue(metric=objective.metric, value=metrics[objective.metric.value])
        if objective.metric.value in metrics else None,
        "model": registered,
        "mlflow": MlflowRun(
            run_id=run_id, experiment_id=run.get("experimentId"),
            run_url=f"{settings.ui_url}/#/experiments/{run.get('experimentId')}/runs/{run_id}",
        ) if run_id else None,
        "observed_generation": generation,
        "conditions": conditions,
    })


