"""TrainingJob with spec.search: run the study's worker Job, report its trials (progress,
best trial, leaderboard), then train the best trial once more through the normal training
Job, which validates it, registers it once and moves the alias if the gates pass. A new
study (a new generation that changes what shapes the trials, a manual request, or a run a
trigger starts) first deletes the earlier study's unfinished Jobs.

Each search is a run in status.runs, recorded when its study starts: the automatic triggers
and their limits are `mlcycle.triggers`' and `trainingjob.retrain`'s, and a run they start
is a new study over the Dataset's current version (`start_search_run`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from mlcycle import kube, studies, triggers, unsupported
from mlcycle.builders.search import (
    COMPONENT_SEARCH,
    best_trial_training,
    build_search_workers,
    search_workers_name,
    study_name,
)
from mlcycle.builders.trainingjob import build_training_job, experiment_name, training_job_name
from mlcycle.objects import Invalid, TrainingJob
from mlcycle.reconcile.common import (
    Event,
    JobState,
    Manifest,
    Outcome,
    job_state,
    now,
    transition_events,
    with_ready,
)
from mlcycle.reconcile.trainingjob import (
    FINISHED,
    NotRunnable,
    current_run,
    ended,
    new_run,
    refused,
    replacement_events,
    resolve_dataset,
    retrain,
    superseded,
    training_outcome,
    with_run,
)
from mlcycle.settings import Settings
from mlcycle_contract import constants, environment
from mlcycle_contract.api.algorithms import ALGORITHMS, hyperparameter_problem
from mlcycle_contract.api.common import ConditionType, parse_duration
from mlcycle_contract.api.learning import Direction
from mlcycle_contract.api.search import (
    LEADERBOARD_SIZE,
    SearchProgress,
    TrialState,
    TrialSummary,
    search_problem,
)
from mlcycle_contract.api.trainingjob import (
    RUNS_LIMIT,
    ConcurrencyPolicy,
    MlflowRun,
    ObjectiveValue,
    RunRecord,
    RunTrigger,
    TrainingJobPhase,
    TrainingJobStatus,
)

SEARCHING = "Searching"
INVALID_SEARCH = "InvalidSearch"
NO_TRIAL_COMPLETED = "NoTrialCompleted"
AUTOMATIC = (RunTrigger.SCHEDULE, RunTrigger.NEW_DATA, RunTrigger.DRIFT)
STUDY_STOPPED = "a new study started, and its study's unfinished Jobs and their Pods were deleted"


def is_search(training_job: TrainingJob) -> bool:
    return training_job.spec.search is not None


def is_workers(job: Manifest) -> bool:
    """Whether the Job is a search's worker Job (else a training Job)."""
    labels = job["metadata"].get("labels") or {}
    return bool(labels.get(constants.LABEL_COMPONENT) == COMPONENT_SEARCH)


def check_search(training_job: TrainingJob) -> None:
    """What the CRD schema cannot check, before any Pod starts."""
    spec = training_job.spec
    assert spec.search is not None
    fields = unsupported.training_job_unsupported(spec)
    if fields:
        raise NotRunnable(unsupported.REASON, unsupported.unsupported_message(fields))
    if spec.algorithm is not None:
        problem = hyperparameter_problem(ALGORITHMS[spec.algorithm], spec.hyperparameters)
        if problem:
            raise NotRunnable("InvalidHyperparameters", problem)
    found = search_problem(spec.search, spec.candidate_algorithms, spec.validation.folds >= 2)
    if found is not None:
        raise NotRunnable(INVALID_SEARCH, f"{found[0]}: {found[1]}")


def reconcile_search(training_job: TrainingJob, settings: Settings,
                     changed_job: Manifest | None = None) -> Outcome[TrainingJobStatus] | None:
    """Ensure the current run's workers (or, once they are done, its final training) run,
    and report its study; None when the search of this generation and request has ended.
    The run of a generation or request is recorded as its study starts. `changed_job`: the
    worker Job whose event asked for this, deleted if it works for another study."""
    status, metadata = training_job.status, training_job.metadata
    if search_ended(training_job):
        return None
    run = current_run(training_job)
    try:
        check_search(training_job)
        dataset = resolve_dataset(training_job)
    except NotRunnable as problem:
        refusal = refused(training_job, problem.reason, problem.message)
        if run is not None and refusal.status.phase == TrainingJobPhase.FAILED:
            # Its record ends with it (a run waiting for its Dataset goes on).
            refusal.status = ended(refusal.status.model_copy(update={"completion_time": now()}))
        return refusal
    search, namespace = training_job.spec.search, metadata.namespace
    assert search is not None
    study = study_name(training_job, dataset.version, triggered_run(status.runs))
    new_study = status.study is not None and status.study != study
    started = status.start_time if status.study == study and status.start_time else now()
    replaced: list[Event] = []
    if run is None:
        runs = search_runs(training_job, dataset.version, new_study, now())
        replaced = replacement_events(status.runs, runs, STUDY_STOPPED)
        training_job = replace(training_job, status=status.model_copy(update={"runs": runs}))
        status = training_job.status
        run = runs[0]
    deadline = started + parse_duration(search.timeout) if search.timeout else None
    workers_name = search_workers_name(metadata,
                                       run.job_name if run.trigger in AUTOMATIC else "")
    stopped: list[Event] = []
    if new_study:
        owned = kube.jobs(namespace, {constants.LABEL_TRAINING_JOB: metadata.name})
        earlier = earlier_study_jobs(owned, metadata.uid, workers_name)
        for name in earlier:
            kube.delete_job(namespace, name)
        stopped = earlier_jobs_stopped(earlier, status.study or "", study)
    if changed_job is not None and works_for_another_study(changed_job, study, workers_name):
        # Made again after the new study deleted it, by a timer tick that read the spec
        # before the change.
        kube.delete_job(namespace, changed_job["metadata"]["name"])
    workers, worker_pods = kube.ensure_job_with_pods(namespace, build_search_workers(
        training_job, dataset, study, deadline, settings, workers_name))
    found = studies.read_trials(settings.operator_tracking_uri, experiment_name(metadata),
                                study, training_job.spec.effective_objective.metric)
    state = workers_state(workers, worker_pods)
    searched = search_outcome(training_job, study, found, state)
    searched.events[:0] = [*stopped, *replaced]
    searched.status = searched.status.model_copy(
        update={"dataset_version": dataset.version, "start_time": started})
    if searched.status.phase == TrainingJobPhase.FAILED:
        searched.status = ended(searched.status)
    best = searched.status.best_trial
    if not (state.finished and state.succeeded) or best is None:
        return searched
    final = best_trial_training(replace(training_job, status=searched.status), best)
    job, pods = kube.ensure_job_with_pods(
        namespace, build_training_job(final, dataset, settings, run.job_name))
    trained = training_outcome(final, job, pods, settings)
    trained.events[:0] = searched.events
    return trained


def search_ended(training_job: TrainingJob) -> bool:
    """Pure: whether the search of this generation and request has ended (or was refused):
    a manual request since its run starts another."""
    status, metadata = training_job.status, training_job.metadata
    request = status.runs[0].request if status.runs else metadata.requested_at
    return (status.phase in FINISHED and status.observed_generation == metadata.generation
            and request == metadata.requested_at)


def triggered_run(runs: Sequence[RunRecord]) -> str:
    """Pure: the identity (its final training Job) of the latest run a trigger started, ''
    if none. Its study is its own, and the runs after it keep it in theirs, so that a raised
    budget still continues the study it finds."""
    return next((run.job_name for run in runs if run.trigger in AUTOMATIC), "")


def search_runs(training_job: TrainingJob, dataset_version: str, new_study: bool,
                at: datetime) -> list[RunRecord]:
    """Pure: status.runs with the run of this generation or request, as its study starts;
    its Job is the one that will train its best trial. A run still running is Replaced when
    the study changes (its Jobs are deleted, whatever spec.concurrencyPolicy says), else
    Superseded (its workers keep running trials of the same study)."""
    starting = training_job.status.model_copy(update={
        "job_name": training_job_name(training_job.metadata), "start_time": at,
        "dataset_version": dataset_version})
    policy = ConcurrencyPolicy.REPLACE if new_study else ConcurrencyPolicy.FORBID
    return with_run(training_job, starting, policy)


def start_search_run(training_job: TrainingJob, status: TrainingJobStatus,
                     fired: list[triggers.Trigger], settings: Settings,
                     at: datetime) -> Outcome[TrainingJobStatus]:
    """The run a trigger starts on a search (`trainingjob.retrain`'s `start`): a new study
    over the Dataset's current version, with its own workers and final training Job, named
    after the first trigger so that a retried tick finds them. A run still running (only
    under Replace: Forbid holds triggers back) is Replaced, its study's Jobs deleted."""
    trigger, reason = fired[0], "; ".join(t.reason for t in fired)
    try:
        check_search(training_job)
        dataset = resolve_dataset(training_job, new_run=True)
    except NotRunnable as problem:
        return Outcome(status, [Event("Warning", problem.reason,
                                      f"{reason}: no run started: {problem.message}")])
    job_name = training_job_name(training_job.metadata, trigger.key)
    record = new_run(training_job, status, trigger.kind, reason, job_name, dataset.version, at)
    runs = [record, *superseded(status.runs, ConcurrencyPolicy.REPLACE, at)][:RUNS_LIMIT]
    begun = replace(training_job, status=status.model_copy(update={
        "runs": runs, "held_back": [], "phase": TrainingJobPhase.RUNNING, "start_time": at,
        "dataset_version": dataset.version}))
    searched = reconcile_search(begun, settings)
    assert searched is not None  # its run is recorded and running
    message = f"run {record.number} ({trigger.kind.value}): {reason}"
    searched.events[:0] = [Event("Normal", "RetrainStarted", message),
                           *replacement_events(status.runs, runs, STUDY_STOPPED)]
    return searched


def retrain_search(training_job: TrainingJob | Invalid[TrainingJobStatus], settings: Settings,
                   drifts: Sequence[triggers.DriftReport] = (),
                   ) -> Outcome[TrainingJobStatus] | None:
    """A retrain tick of a search: the triggers and limits of any TrainingJob, and a run
    that starts is a new study."""
    return retrain(training_job, settings, drifts, start_search_run)


def earlier_study_jobs(jobs: list[Manifest], uid: str, workers_name: str) -> list[str]:
    """Pure: the Jobs to delete when a new study starts: every unfinished Job of this
    TrainingJob (its workers of earlier generations, a final training of the earlier study)
    but the new study's workers. Raising maxTrials or parallelism keeps the study, and its
    earlier workers keep running trials of it."""
    return sorted(
        job["metadata"]["name"] for job in jobs
        if job["metadata"]["name"] != workers_name
        and not job["metadata"].get("deletionTimestamp")
        and any(ref.get("uid") == uid for ref in job["metadata"].get("ownerReferences") or [])
        and not job_state(job, []).finished)


def works_for_another_study(job: Manifest, study: str, workers_name: str) -> bool:
    """Pure: an unfinished worker Job of another generation whose workers run another
    study than `study`."""
    metadata = job["metadata"]
    if (metadata["name"] == workers_name or metadata.get("deletionTimestamp")
            or job_state(job, []).finished):
        return False
    containers = job["spec"]["template"]["spec"]["containers"]
    studies_run = {env.get("value") for container in containers
                   for env in container.get("env") or []
                   if env.get("name") == environment.SEARCH_STUDY.name}
    return bool(studies_run) and study not in studies_run


def earlier_jobs_stopped(names: list[str], earlier: str, study: str) -> list[Event]:
    if not names:
        return []
    return [Event("Normal", "EarlierStudyStopped",
                  f"study {study} starts (the space, algorithms, data or another setting "
                  f"that shapes the trials changed): deleted the unfinished Jobs of study "
                  f"{earlier} and their Pods: {', '.join(names)}")]


def workers_state(workers: Manifest, pods: list[Manifest]) -> JobState:
    """Pure: the worker Job's state, its failure told by the worker that ended it.

    A worker that ends the search (its failure budget spent: exit code EXIT_INVALID_INPUT,
    which the Job's pod failure policy makes fatal) has the Job stop the others, and their
    later messages only say they were stopped."""
    ending = [pod for pod in pods if exit_code(pod) == environment.EXIT_INVALID_INPUT]
    return job_state(workers, ending or pods)


def exit_code(pod: Manifest) -> int | None:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        terminated = (status.get("state") or {}).get("terminated") or {}
        if "exitCode" in terminated:
            return int(terminated["exitCode"])
    return None


def ranked(trials: list[TrialSummary], direction: Direction) -> list[TrialSummary]:
    """The completed trials, best first (the earlier trial first among equals)."""
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    sign = -1.0 if direction == Direction.MAXIMIZE else 1.0
    return sorted(done, key=lambda t: (sign * (t.value or 0.0), t.number))


def search_outcome(training_job: TrainingJob, study: str, found: studies.Trials,
                   state: JobState) -> Outcome[TrainingJobStatus]:
    """Pure: the status while the workers run, or how they ended."""
    old, generation = training_job.status, training_job.metadata.generation
    search, objective = training_job.spec.search, training_job.spec.effective_objective
    assert search is not None and objective.direction is not None
    progress = SearchProgress.count(search.max_trials, [t.state for t in found.trials])
    leaderboard = ranked(found.trials, objective.direction)[:LEADERBOARD_SIZE]
    best = leaderboard[0] if leaderboard else None
    status = old.model_copy(update={
        "study": study,
        "job_name": state.name,
        "observed_generation": generation,
        "progress": progress,
        "best_trial": best,
        "leaderboard": leaderboard,
        "objective": ObjectiveValue(metric=objective.metric, value=best.value)
        if best is not None and best.value is not None else None,
        "mlflow": MlflowRun(run_id=found.parent_run_id, experiment_id=found.experiment_id)
        if found.parent_run_id else old.mlflow,
    })
    events = []
    update: dict[str, Any]
    if best is not None and (old.best_trial is None or old.study != study
                             or old.best_trial.number != best.number):
        events.append(Event("Normal", "BestTrialImproved", _best(best, objective.metric.value)))
    if not state.finished:
        message = (f"{progress.trials} trials finished ({progress.running} running, "
                   f"{progress.pruned} pruned, {progress.failed} failed)")
        if best is not None:
            message += f"; best {_best(best, objective.metric.value)}"
        update = {"phase": TrainingJobPhase.RUNNING,
                  "conditions": with_ready(status.conditions, False, SEARCHING, message,
                                           generation)}
    elif not state.succeeded or best is None:
        reason, message = state.failure() if not state.succeeded else (
            NO_TRIAL_COMPLETED, f"none of the {len(found.trials)} trials completed: "
            + "; ".join(f"trial {n}: {e}" for n, e in sorted(found.errors.items())[:3]))
        update = {"phase": TrainingJobPhase.FAILED, "completion_time": now(),
                  "conditions": with_ready(status.conditions, False, reason, message,
                                           generation)}
    else:
        update = {"phase": TrainingJobPhase.RUNNING}
    status = status.model_copy(update=update)
    return Outcome(status, transition_events(old.conditions, status.conditions,
                                             ConditionType.READY) + events)


def _best(trial: TrialSummary, metric: str) -> str:
    return f"{metric} = {trial.value:.4f} (trial {trial.number}, {trial.algorithm.value})"
