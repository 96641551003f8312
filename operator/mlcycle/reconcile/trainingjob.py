"""TrainingJob: check what only the operator can check, pin the dataset version, run one
training Job per generation (or retraining request) and per automatic trigger (spec.schedule,
spec.retrain.onNewData and onDrift, within the limits `mlcycle.triggers` decides), record each
run in status.runs, and report what the trainer reported. A search's runs start through the
same triggers and limits (`retrain`'s `start`), in `mlcycle.reconcile.search`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from mlcycle import kube, registry, tenancy, triggers, unsupported
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
    Event,
    JobState,
    Manifest,
    Outcome,
    condition,
    image_refusal,
    job_state,
    now,
    outcome,
    transition_events,
    with_ready,
)
from mlcycle.settings import Settings
from mlcycle_contract import constants
from mlcycle_contract.api.algorithms import ALGORITHMS, hyperparameter_problem
from mlcycle_contract.api.common import ConditionType, set_condition
from mlcycle_contract.api.dataset import DatasetPhase
from mlcycle_contract.api.trainingjob import (
    RUNS_LIMIT,
    ConcurrencyPolicy,
    HeldTrigger,
    MlflowRun,
    RunPhase,
    RunRecord,
    RunTrigger,
    TrainingJobConditionType,
    TrainingJobPhase,
    TrainingJobSpec,
    TrainingJobStatus,
)
from mlcycle_contract.results import TrainingResult

FINISHED = (TrainingJobPhase.SUCCEEDED, TrainingJobPhase.FAILED)
INVALID_SCHEDULE = "InvalidSchedule"
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
    job_name = current_job_name(training_job)
    if not reports_on(training_job, job_name):
        return None  # finished, whatever became of its Job (TTL) and Dataset since
    namespace = training_job.metadata.namespace
    try:
        check_spec(training_job, settings)
        dataset = resolve_dataset(training_job,
                                  new_run=training_job.status.job_name != job_name)
        job_manifest = build_training_job(training_job, dataset, settings, job_name)
        check_model_owned(training_job, tenancy.ensure_tenant(namespace, settings), settings)
    except NotRunnable as problem:
        return refused(training_job, problem.reason, problem.message)
    replaced = replaced_run(training_job.spec, training_job.status.runs, job_name)
    if replaced is not None:
        kube.delete_job(namespace, replaced.job_name)
    job, pods = kube.ensure_job_with_pods(namespace, job_manifest)
    return training_outcome(training_job, job, pods, settings)


def current_run(training_job: TrainingJob) -> RunRecord | None:
    """The latest run, when it runs this generation and request (the one they started, or
    an automatic run since); None while their run is yet to start."""
    latest = training_job.status.runs[0] if training_job.status.runs else None
    metadata = training_job.metadata
    if latest is not None and (latest.generation, latest.request) == (
            metadata.generation, metadata.requested_at):
        return latest
    return None


def current_job_name(training_job: TrainingJob) -> str:
    """The Job of the current run: the latest run's, when it ran this generation and request
    (an automatic run has its own), else the generation's (a run about to start)."""
    run = current_run(training_job)
    return run.job_name if run is not None else training_job_name(training_job.metadata)


def reports_on(training_job: TrainingJob, job_name: str) -> bool:
    """Whether this Job's events set the TrainingJob's status: it is the Job of the current
    run, and its end is not recorded yet."""
    status = training_job.status
    return current_job_name(training_job) == job_name and not (
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
    schedule_problem = triggers.schedule_problem(spec)
    if schedule_problem:
        raise NotRunnable(INVALID_SCHEDULE, schedule_problem)
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


def resolve_dataset(training_job: TrainingJob, new_run: bool = False) -> ResolvedDataset:
    """The dataset version to train on: the one asked for, else the one already pinned for
    the running run (unless this is a `new_run`, one that replaces or supersedes it), else
    the Dataset's current version."""
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
        status.dataset_version if status.phase == TrainingJobPhase.RUNNING and not new_run
        else None)
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
    state = job_state(job, pods, (TrainingResult,))
    labels = job["metadata"].get("labels") or {}
    status = old.model_copy(update={
        "job_name": state.name,
        "dataset_version": labels.get(constants.LABEL_DATASET_VERSION, old.dataset_version),
        "start_time": old.start_time if old.job_name == state.name and old.start_time
        else now(),
        "observed_generation": generation,
    })
    status = status.model_copy(update={"runs": with_run(training_job, status)})
    reported = run_outcome(old, status, state, settings, generation)
    reported.events[:0] = replacement_events(old.runs, reported.status.runs)
    return reported


def run_outcome(old: TrainingJobStatus, status: TrainingJobStatus, state: JobState,
                settings: Settings, generation: int) -> Outcome[TrainingJobStatus]:
    """Pure: the status, with the current run's record, as its Job stands."""
    if not state.finished:
        return outcome(old.conditions, status.model_copy(update={
            "phase": TrainingJobPhase.RUNNING,
            "conditions": with_ready(status.conditions, False, "Training",
                                     f"Job {state.name} is training", generation),
        }))
    result = state.result(TrainingResult) if state.succeeded else None
    if result is None or isinstance(result, str):
        reason, message = (INVALID_RESULT, result) if result else state.failure()
        return outcome(old.conditions, ended(status.model_copy(update={
            "phase": TrainingJobPhase.FAILED,
            "completion_time": now(),
            "conditions": with_ready(status.conditions, False, reason, message, generation),
        })))
    return outcome(old.conditions, ended(succeeded(status, result, settings, generation),
                                         result.gates.passed))


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
        "champion": result.champion,
        "mlflow": MlflowRun(
            run_id=run.run_id, experiment_id=run.experiment_id,
            run_url=f"{settings.ui_url}/#/experiments/{run.experiment_id}/runs/{run.run_id}"),
        "conditions": conditions,
    })


# --- Runs and automatic triggers ----------------------------------------------------------


def with_run(training_job: TrainingJob, status: TrainingJobStatus,
             policy: ConcurrencyPolicy | None = None) -> list[RunRecord]:
    """status.runs with the current run in it: a run of the generation or request that no
    record names yet (an automatic run's record is written when it starts) is added. A run
    still running is superseded as `policy` says (the spec's unless given)."""
    runs, metadata = status.runs, training_job.metadata
    if runs and runs[0].job_name == status.job_name:
        return runs
    previous = runs[0].generation if runs else None
    trigger, reason = (
        (RunTrigger.CREATED, "the TrainingJob was created") if previous is None
        else (RunTrigger.SPEC_CHANGED, f"the spec changed (generation {metadata.generation})")
        if previous != metadata.generation
        else (RunTrigger.MANUAL, f"annotation {constants.ANNOTATION_REQUESTED_AT}="
              f"{metadata.requested_at!r}"))
    assert status.job_name is not None and status.start_time is not None
    record = new_run(training_job, status, trigger, reason, status.job_name,
                     status.dataset_version, status.start_time)
    return [record, *superseded(runs, policy or training_job.spec.concurrency_policy,
                                status.start_time)][:RUNS_LIMIT]


def new_run(training_job: TrainingJob, status: TrainingJobStatus, trigger: RunTrigger,
            reason: str, job_name: str, dataset_version: str | None,
            start: datetime) -> RunRecord:
    return RunRecord(
        number=status.runs[0].number + 1 if status.runs else 1, trigger=trigger,
        reason=reason[:512], phase=RunPhase.RUNNING, job_name=job_name,
        generation=training_job.metadata.generation,
        request=training_job.metadata.requested_at[:256], dataset_version=dataset_version,
        start_time=start)


def superseded(runs: list[RunRecord], policy: ConcurrencyPolicy,
               at: datetime) -> list[RunRecord]:
    """A run still running when a newer one starts is no longer reported on: recorded as
    Superseded (Forbid: its Job is left to finish) or, ended at `at`, as Replaced (Replace:
    its Job was deleted)."""
    if not runs or runs[0].phase != RunPhase.RUNNING:
        return runs
    if policy == ConcurrencyPolicy.REPLACE:
        ended_run = runs[0].model_copy(update={"phase": RunPhase.REPLACED, "completion_time": at})
    else:
        ended_run = runs[0].model_copy(update={"phase": RunPhase.SUPERSEDED})
    return [ended_run, *runs[1:]]


def replaced_run(spec: TrainingJobSpec, runs: list[RunRecord],
                 job_name: str) -> RunRecord | None:
    """Replace: the run still running that the run with Job `job_name` replaces, whose Job
    is deleted before the new one is created; None under Forbid or when no other run runs."""
    latest = runs[0] if runs else None
    if (spec.concurrency_policy != ConcurrencyPolicy.REPLACE or latest is None
            or latest.phase != RunPhase.RUNNING or latest.job_name == job_name):
        return None
    return latest


def replaced_job(runs: list[RunRecord], job: Manifest) -> bool:
    """Pure: whether `job` is an unfinished Job of a run recorded Replaced. A reconcile that
    read the status before the replacement can still make it (a search's progress tick
    creating the old run's final training); its status write then fails, but the Job would
    train and register a version nobody reports on."""
    metadata = job["metadata"]
    return (not metadata.get("deletionTimestamp") and not job_state(job, []).finished
            and any(r.job_name == metadata["name"] and r.phase == RunPhase.REPLACED
                    for r in runs))


REPLACE_DELETED = "spec.concurrencyPolicy Replace deleted its Job and Pods"


def replacement_events(before: list[RunRecord], after: list[RunRecord],
                       cause: str = REPLACE_DELETED) -> list[Event]:
    """A RunReplaced Event when `after` records as Replaced the run `before` had running,
    naming it, the run that replaced it, and what stopped it."""
    if len(after) < 2 or after[1].phase != RunPhase.REPLACED:
        return []
    new, replaced = after[0], after[1]
    if not any(r.number == replaced.number and r.phase == RunPhase.RUNNING for r in before):
        return []
    return [Event("Normal", "RunReplaced",
                  f"run {replaced.number} (Job {replaced.job_name}) replaced by run "
                  f"{new.number} ({new.trigger.value}: {new.reason}): {cause}")]


def ended(status: TrainingJobStatus, gates_passed: bool | None = None) -> TrainingJobStatus:
    """The current run's record completed from the status of its end."""
    if not status.runs:
        return status
    latest = status.runs[0].model_copy(update={
        "phase": RunPhase.SUCCEEDED if status.phase == TrainingJobPhase.SUCCEEDED
        else RunPhase.FAILED,
        "completion_time": status.completion_time,
        "model_version": status.model.version if status.model and gates_passed is not None
        else None,
        "gates_passed": gates_passed,
    })
    return status.model_copy(update={"runs": [latest, *status.runs[1:]]})


def automatic(spec: TrainingJobSpec) -> bool:
    return spec.schedule is not None or spec.retrain.on_new_data or spec.retrain.on_drift


StartRun = Callable[[TrainingJob, TrainingJobStatus, list[triggers.Trigger], Settings, datetime],
                    Outcome[TrainingJobStatus]]


def retrain(training_job: TrainingJob | Invalid[TrainingJobStatus], settings: Settings,
            drifts: Sequence[triggers.DriftReport] = (),
            start: StartRun | None = None) -> Outcome[TrainingJobStatus] | None:
    """A timer's tick: start the run an automatic trigger asks for, unless a limit holds it
    back (an Event then: a schedule's fire is skipped, new data and drift wait for the
    limit). `drifts`: the deployments that monitor versions it produced (onDrift), which
    DriftMonitored names. `start` starts the run: `start_run`'s training Job unless given
    (a search's study)."""
    if isinstance(training_job, Invalid) or not automatic(training_job.spec):
        return None
    old = training_job.status
    if current_run(training_job) is None:
        return None  # the generation's own run has not started: it was refused or waits
    at, spec = now(), training_job.spec
    version = dataset_version(training_job) if spec.retrain.on_new_data else None
    fired = triggers.due(spec, old, version, at, drifts)
    status = old.model_copy(update={"last_schedule_time": fired.last_schedule_time})
    if spec.retrain.on_drift:
        status = status.model_copy(update={"conditions": set_condition(
            status.conditions,
            triggers.drift_monitored(spec, drifts, training_job.metadata.generation))})
    monitored = transition_events(old.conditions, status.conditions,
                                  TrainingJobConditionType.DRIFT_MONITORED)
    if not fired.triggers:
        status = status.model_copy(update={"held_back": []})
        return None if status == old else Outcome(status, monitored)
    held = triggers.hold(spec, old, at)
    result = (held_back(status, fired.triggers, held, at) if held is not None
              else (start or start_run)(training_job, status, fired.triggers, settings, at))
    return Outcome(result.status, [*monitored, *result.events])


def dataset_version(training_job: TrainingJob) -> str | None:
    """The Dataset's current version, when it is Ready."""
    body = kube.read_custom(constants.DATASET, training_job.metadata.namespace,
                            training_job.spec.dataset_ref.name)
    dataset = parse_dataset(body) if body else None
    if dataset is None or isinstance(dataset, Invalid) or (
            dataset.status.phase != DatasetPhase.READY):
        return None
    return dataset.status.version


def held_back(status: TrainingJobStatus, fired: list[triggers.Trigger], held: triggers.Hold,
              at: datetime) -> Outcome[TrainingJobStatus]:
    """An Event for each trigger a limit holds back: every skipped fire of the schedule, new
    data once per limit (it stays in status.heldBack and starts a run when the limit allows)."""
    events, waiting = [], []
    for trigger in fired:
        if trigger.kind == RunTrigger.SCHEDULE:
            events.append(Event("Normal", "RetrainHeldBack",
                                f"{trigger.reason}: skipped, {held.message}"))
            continue
        known = next((h for h in status.held_back if h.trigger == trigger.kind
                      and h.reason == held.reason), None)
        waiting.append(known or HeldTrigger(trigger=trigger.kind, reason=held.reason,
                                            message=f"{trigger.reason}: {held.message}"[:1024],
                                            since=at))
        if known is None:
            events.append(Event("Normal", "RetrainHeldBack",
                                f"{trigger.reason}: held back, {held.message}"))
    return Outcome(status.model_copy(update={"held_back": waiting}), events)


def start_run(training_job: TrainingJob, status: TrainingJobStatus,
              fired: list[triggers.Trigger], settings: Settings,
              at: datetime) -> Outcome[TrainingJobStatus]:
    """One run answers every trigger that fired; it is named after the first, so a retried
    tick finds the Job it created."""
    trigger, reason = fired[0], "; ".join(t.reason for t in fired)
    namespace, generation = training_job.metadata.namespace, training_job.metadata.generation
    job_name = training_job_name(training_job.metadata, trigger.key)
    try:
        check_spec(training_job, settings)
        dataset = resolve_dataset(training_job, new_run=True)
        check_model_owned(training_job, tenancy.ensure_tenant(namespace, settings), settings)
    except NotRunnable as problem:
        return Outcome(status, [Event("Warning", problem.reason,
                                      f"{reason}: no run started: {problem.message}")])
    replaced = replaced_run(training_job.spec, status.runs, job_name)
    if replaced is not None:
        kube.delete_job(namespace, replaced.job_name)
    kube.ensure_job(namespace, build_training_job(training_job, dataset, settings, job_name))
    record = new_run(training_job, status, trigger.kind, reason, job_name, dataset.version, at)
    message = f"run {record.number} ({trigger.kind.value}): {reason}"
    runs = [record, *superseded(status.runs, training_job.spec.concurrency_policy, at)]
    return Outcome(status.model_copy(update={
        "runs": runs[:RUNS_LIMIT],
        "held_back": [],
        "job_name": job_name,
        "phase": TrainingJobPhase.RUNNING,
        "start_time": at,
        "dataset_version": dataset.version,
        "conditions": with_ready(status.conditions, False, "Training",
                                 f"Job {job_name} is training ({message})", generation),
    }), [Event("Normal", "RetrainStarted", message),
         *replacement_events(status.runs, runs)])
