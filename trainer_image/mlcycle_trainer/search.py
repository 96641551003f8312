"""`search`: one long-lived worker of a hyperparameter search, running trial after trial of
the study its Job's workers share, until the study's budget, goal or deadline is reached.

A worker reads the dataset once and pays the Pod's start-up once, for many trials. Each
trial cross-validates one configuration on the training rows (the holdout stays unseen
until the best configuration is trained by the `train` command) and reports intermediate
values on the way, so the pruner can stop it early (`search_objective`). The study
lives in S3 (`search_journal`); trials are counted there, so every worker stops when
`maxTrials` trials have started in total, whichever worker ran them.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import FrozenTrial
from optuna.trial import TrialState as OptunaState

from mlcycle_contract.api.learning import Direction, Metric
from mlcycle_contract.api.search import Sampler, SearchSpec, TrialState, effective_space
from mlcycle_contract.api.trainingjob import TrainingJobSpec
from mlcycle_contract.environment import (
    JOB_COMPLETION_INDEX,
    MLFLOW_EXPERIMENT_NAME,
    SEARCH_DEADLINE,
    SEARCH_STUDY,
    SEARCH_STUDY_URI,
    TAG_DATASET_NAME,
    TAG_DATASET_VERSION,
    TAG_TRAININGJOB_UID,
    TRAINING_SPEC,
)
from mlcycle_contract.results import SearchWorkerResult
from mlcycle_trainer import lineage
from mlcycle_trainer.environment import Owner, model_from_json, optional, required
from mlcycle_trainer.errors import INVALID_SPEC, InvalidInput, Terminated, TrainerError
from mlcycle_trainer.mlflow_rest import MlflowRest
from mlcycle_trainer.preprocessing import features_and_target
from mlcycle_trainer.search_journal import S3JournalStorage, journal_storage
from mlcycle_trainer.search_objective import Folds, evaluate, folds_for, most_steps, pruner_for
from mlcycle_trainer.search_space import GridSampler, Spaces, grid, grid_size, suggest
from mlcycle_trainer.search_tracking import (
    TAG_TRIAL_WORKER,
    SearchTracking,
    ensure_experiment,
    trial_params,
)
from mlcycle_trainer.snapshots import read_snapshot
from mlcycle_trainer.storage import ObjectMissing, ObjectStore, S3Location
from mlcycle_trainer.validation import Holdout, split

logger = logging.getLogger(__name__)

TRIALS_FAILED = "TrialsFailed"
HEARTBEAT_SECONDS = 5.0
STALE_SECONDS = 30.0  # a worker silent this long is gone: its running trial failed
SETTLE_SECONDS = 1.0  # how often a worker done with its trials looks at the others' again
# How long a worker waits for its trials' MLflow requests: when it stops, and (within the
# Pod's grace period, builders.search.GRACE_SECONDS = 5) when it is stopped or fails.
FLUSH_SECONDS = 120.0
FLUSH_ON_ERROR_SECONDS = 3.0
# ATTR_UNCOUNTED marks a trial that counts nowhere: one started past the budget, or one whose
# worker died before it had an MLflow run (it ran nothing; another trial takes its place).
ATTR_WORKER, ATTR_RUN, ATTR_ERROR, ATTR_UNCOUNTED = "worker", "run_id", "error", "overflow"


@dataclass
class Worker:
    """One worker: the study it shares, and what it needs to run trials."""

    spec: TrainingJobSpec
    search: SearchSpec
    spaces: Spaces
    folds: Folds
    study: optuna.Study
    storage: S3JournalStorage
    tracking: SearchTracking
    store: ObjectStore
    heartbeats: S3Location
    run_tags: dict[str, str]
    name: str
    deadline: datetime | None
    finished: int = 0

    @property
    def metric(self) -> Metric:
        return self.spec.effective_objective.metric

    @property
    def max_trials(self) -> int:
        """spec.search.maxTrials, or fewer when a grid has fewer points."""
        if self.search.sampler == Sampler.GRID:
            return min(self.search.max_trials, grid_size(grid(self.spaces)))
        return self.search.max_trials

    @property
    def maximize(self) -> bool:
        return self.spec.effective_objective.direction == Direction.MAXIMIZE

    def run(self) -> str:
        """Trials until the study stops; why it stopped.

        A worker whose budget is spent still waits for the trials running in other workers:
        a trial whose worker died (its Pod was killed) ends Failed only once its heartbeat is
        stale, and when every worker had already left it would stay Running for good; so
        would the MLflow run of a trial whose worker died before its end reached MLflow
        (`end_orphaned_runs`). On any error (SIGTERM included) the worker's own MLflow
        requests still go out, for a few seconds."""
        try:
            while True:
                self.fail_stale_trials()
                reason = self.stop_reason(self.counted())
                if reason is None:
                    self.run_trial()  # one past the budget does not run; the next check stops
                    continue
                self.tracking.flush(FLUSH_SECONDS)
                if self.running() or self.end_orphaned_runs():
                    time.sleep(SETTLE_SECONDS)
                else:
                    return reason
        except BaseException:
            self.tracking.flush_quietly(FLUSH_ON_ERROR_SECONDS)
            raise

    def counted(self) -> list[FrozenTrial]:
        """The study's trials, without those that count nowhere."""
        return [t for t in self.study.get_trials(deepcopy=False)
                if not t.user_attrs.get(ATTR_UNCOUNTED)]

    def running(self) -> list[FrozenTrial]:
        return [t for t in self.study.get_trials(deepcopy=False, states=(OptunaState.RUNNING,))
                if not t.user_attrs.get(ATTR_UNCOUNTED)]

    def stop_reason(self, trials: list[FrozenTrial]) -> str | None:
        """Why no further trial starts, or None; raises when the failure budget is spent."""
        failed = [t for t in trials if t.state == OptunaState.FAIL]
        allowed = self.search.max_failed_trials
        if allowed is not None and len(failed) > allowed:
            errors = sorted({str(t.user_attrs.get(ATTR_ERROR, "stopped")) for t in failed})
            raise InvalidInput(
                TRIALS_FAILED,
                f"{len(failed)} trials failed, more than spec.search.maxFailedTrials "
                f"({allowed}): trials {', '.join(str(t.number) for t in failed[:20])}: "
                + "; ".join(errors[:3]),
                "spec.search.maxFailedTrials")
        goal = self.search.goal
        values = [t.value for t in trials
                  if t.state == OptunaState.COMPLETE and t.value is not None]
        if goal is not None and values and (
                max(values) >= goal if self.maximize else min(values) <= goal):
            return "goal"
        if self.deadline is not None and datetime.now(UTC) >= self.deadline:
            return "timeout"
        if len(trials) >= self.max_trials:
            return "maxTrials"
        return None

    def past_budget(self, number: int) -> bool:
        """Trials are numbered in the journal's order, so the trials before this one decide,
        without a lock, whether it fits in maxTrials."""
        return len([t for t in self.counted() if t.number < number]) >= self.max_trials

    def run_trial(self) -> None:
        """One trial; one past the budget is marked and failed at once, counts nowhere and
        gets no MLflow run."""
        trial = self.study.ask()
        if self.past_budget(trial.number):
            trial.set_user_attr(ATTR_UNCOUNTED, True)
            self.study.tell(trial, state=OptunaState.FAIL)
            return
        trial.set_user_attr(ATTR_WORKER, self.name)
        algorithm, sampled = suggest(trial, self.spaces)
        # Before the trial runs, the others read who runs it (for its heartbeat) and what it
        # tries (TPE's constant liar); the rest reaches the journal with the trial's end.
        self.storage.flush()
        hyperparameters = {**self.spec.hyperparameters, **sampled}  # fixed ones, if any
        params = trial_params(algorithm, sampled)
        run = self.tracking.start_trial(trial.number, algorithm,
                                        {**self.run_tags, TAG_TRIAL_WORKER: self.name})
        intermediate: dict[int, float] = {}
        value: float | None = None
        error: str | None = None
        try:
            value = evaluate(trial, self.spec, self.folds, algorithm, hyperparameters,
                             intermediate)
            state = TrialState.COMPLETE
        except optuna.TrialPruned:
            state = TrialState.PRUNED
        except Terminated:
            self.end(trial, run, params, TrialState.FAILED, intermediate, None,
                     "Terminated: the worker Pod was stopped")
            raise
        except Exception as exc:  # a trial's failure is the study's data, not the worker's
            reason = exc.reason if isinstance(exc, TrainerError) else type(exc).__name__
            error = f"{reason}: {exc}"[:1000]
            state = TrialState.FAILED
            logger.warning("Trial %d (%s) failed: %s", trial.number, algorithm, error)
        self.end(trial, run, params, state, intermediate, value, error)

    def end(self, trial: optuna.Trial, run: Future[str], params: dict[str, str],
            state: TrialState, intermediate: dict[int, float], value: float | None,
            error: str | None) -> None:
        """The run's end is queued, then the study told: the study's sampler and the other
        workers have the result at once, and MLflow moments later. The run exists before
        the study holds the trial finished (its creation, sent as the trial started, is
        waited for): a trial the study counts always has its run. A worker killed before
        its queue went out leaves that run Running, for a trial the study holds finished,
        with all of its results: `end_orphaned_runs` ends it from there."""
        run_id = run.result()  # raises as the creation failed
        trial.set_user_attr(ATTR_RUN, run_id)
        self.tracking.end_trial_later(run_id, state, self.metric.value, intermediate, value,
                                      error, params)
        if error:
            trial.set_user_attr(ATTR_ERROR, error)
        self.study.tell(trial, value if state == TrialState.COMPLETE else None,
                        state=OPTUNA_STATES[state])
        self.finished += 1
        logger.info("Trial %d: %s%s", trial.number, state.value,
                    f", {self.metric.value} = {value:.4f}" if value is not None else "")

    def fail_stale_trials(self) -> None:
        """A running trial whose worker stopped beating (its Pod was killed) ends Failed, in
        the study and in MLflow. One that has no MLflow run yet ran nothing: it counts
        nowhere, and another trial takes its place."""
        now = time.time()
        for trial in self.running():
            started = trial.datetime_start.timestamp() if trial.datetime_start else now
            if now - started < STALE_SECONDS:
                continue
            owner = str(trial.user_attrs.get(ATTR_WORKER, ""))
            if owner and now - self.last_beat(owner) < STALE_SECONDS:
                continue
            run_id = trial.user_attrs.get(ATTR_RUN) or self.tracking.trial_run(trial.number)
            error = f"WorkerLost: worker {owner or '(unknown)'} stopped during the trial"
            attribute, value = (ATTR_ERROR, error) if run_id else (ATTR_UNCOUNTED, True)
            try:  # the storage's own calls: a trial of another worker is no optuna.Trial here
                self.storage.set_trial_user_attr(trial._trial_id, attribute, value)
                self.storage.set_trial_state_values(trial._trial_id, OptunaState.FAIL)
            except (UpdateFinishedTrialError, RuntimeError):
                continue  # another worker ended it first
            if not run_id:
                logger.warning("Trial %d dropped: its worker %s stopped before it ran",
                               trial.number, owner or "(unknown)")
                continue
            logger.warning("Trial %d failed: %s", trial.number, error)
            self.tracking.end_trial(str(run_id), TrialState.FAILED, self.metric.value, {},
                                    None, error, self.lost_trial_params(trial))

    def end_orphaned_runs(self) -> int:
        """Runs still Running in MLflow of trials the study holds finished: their worker
        died after telling the study and before its queued requests reached MLflow. Each is
        ended as that worker would have, from the study (state, intermediate and final
        values, error, parameters), once the worker's heartbeat is stale. Returns how many
        wait for that."""
        trials = {t.number: t for t in self.counted()}
        waiting = 0
        for run_id, number, owner in self.tracking.open_trial_runs():
            trial = trials.get(number)
            if trial is None or trial.state not in TRIAL_STATES or owner == self.name:
                continue  # a running trial is fail_stale_trials' (own runs: flushed)
            if time.time() - self.last_beat(owner) < STALE_SECONDS:
                waiting += 1
                continue
            state = TRIAL_STATES[trial.state]
            logger.warning("Trial %d: ending its run, left Running by worker %s", number,
                           owner or "(unknown)")
            ended = trial.datetime_complete
            self.tracking.end_trial(
                run_id, state, self.metric.value, dict(trial.intermediate_values),
                trial.value if state == TrialState.COMPLETE else None,
                trial.user_attrs.get(ATTR_ERROR), self.lost_trial_params(trial),
                int(ended.timestamp() * 1000) if ended else None)
        return waiting

    def lost_trial_params(self, trial: FrozenTrial) -> dict[str, str]:
        """The run parameters of another worker's trial, from the journal: written there
        before its run was created, unless that worker died in between."""
        try:
            return trial_params(*suggest(trial, self.spaces))
        except ValueError:
            return {}

    def last_beat(self, worker: str) -> float:
        try:
            return float(self.store.get(self.heartbeats.child(worker)))
        except ObjectMissing:
            return 0.0

    def best(self) -> FrozenTrial | None:
        done = [t for t in self.counted() if t.state == OptunaState.COMPLETE]
        if not done:
            return None
        pick = max if self.maximize else min
        return pick(done, key=lambda t: float(t.value or 0.0))


OPTUNA_STATES = {TrialState.COMPLETE: OptunaState.COMPLETE,
                 TrialState.PRUNED: OptunaState.PRUNED, TrialState.FAILED: OptunaState.FAIL}
TRIAL_STATES = {optuna_state: state for state, optuna_state in OPTUNA_STATES.items()}


@contextmanager
def heartbeat(store: ObjectStore, location: S3Location) -> Iterator[None]:
    """Writes the time to `location` every few seconds while the block runs."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.is_set():
            try:
                store.put(location, str(time.time()).encode(), "text/plain")
            except TrainerError as exc:  # the next beat may get through
                logger.warning("Heartbeat not written: %s", exc.message)
            stop.wait(HEARTBEAT_SECONDS)

    thread = threading.Thread(target=beat, name="heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()


def sampler_for(search: SearchSpec, spaces: Spaces, worker: int) -> optuna.samplers.BaseSampler:
    seed = None if search.seed is None else search.seed + worker
    if search.sampler == Sampler.RANDOM:
        return optuna.samplers.RandomSampler(seed=seed)
    if search.sampler == Sampler.GRID:
        return GridSampler(grid(spaces), seed=seed)
    if search.sampler == Sampler.QMC:
        return optuna.samplers.QMCSampler(seed=seed)
    if search.sampler == Sampler.CMAES:
        return optuna.samplers.CmaEsSampler(seed=seed)
    # group: AutoML's parameters exist only with their algorithm; constant_liar: a worker
    # takes the trials running in the others into account.
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                      constant_liar=True)


def _lineage(owner: Owner, dataset: lineage.DatasetInput) -> dict[str, str]:
    return {"mlcycle.trainingjob.name": owner.name, TAG_TRAININGJOB_UID: owner.uid,
            "mlcycle.namespace": owner.namespace, "mlcycle.image": owner.image,
            TAG_DATASET_NAME: dataset.name, TAG_DATASET_VERSION: dataset.version}


def run_search(store: ObjectStore | None = None) -> SearchWorkerResult:
    """Run trials of the study the environment names until it stops."""
    logging.getLogger("mlcycle_trainer.storage").setLevel(logging.WARNING)  # every record
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    store = store or ObjectStore()
    owner = Owner.from_environment()
    spec = model_from_json(TRAINING_SPEC, TrainingJobSpec, "spec")
    if spec.search is None:
        raise InvalidInput(INVALID_SPEC, "the search command needs spec.search", "spec.search")
    search = spec.search
    dataset = lineage.DatasetInput.from_environment()
    task, objective = spec.effective_task, spec.effective_objective
    study_uri = S3Location.parse(required(SEARCH_STUDY_URI))
    deadline = optional(SEARCH_DEADLINE)
    index = int(optional(JOB_COMPLETION_INDEX))
    spaces = effective_space(search, spec.candidate_algorithms)

    frame = read_snapshot(store, dataset.uri, dataset.version)
    x, y = features_and_target(frame, dataset.target, task)
    x_train, _, y_train, _ = split(x, y, Holdout.resolve(dataset.split, spec.validation, task))
    folds = folds_for(x_train, y_train, task, objective.metric, spec.validation.folds,
                      spec.validation.seed)
    storage = journal_storage(store, study_uri.child("journal"))
    study = optuna.create_study(
        storage=storage,
        study_name=required(SEARCH_STUDY),
        direction=objective.direction.value if objective.direction else "maximize",
        sampler=sampler_for(search, spaces, index),
        pruner=pruner_for(search, most_steps(spec, spaces, folds)),
        load_if_exists=True,
    )
    tags = _lineage(owner, dataset)
    client = MlflowRest.from_environment()
    experiment_id = ensure_experiment(client, optional(MLFLOW_EXPERIMENT_NAME))
    runs = SearchTracking.open(client, experiment_id, study.study_name, f"{owner.name}-search",
                               tags, store, study_uri.child("parent-run.json"))
    name = f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}"  # a replaced Pod is a new worker
    worker = Worker(spec, search, spaces, folds, study, storage, runs, store,
                    study_uri.child("heartbeats"), tags, name,
                    datetime.fromisoformat(deadline) if deadline else None)
    logger.info("Worker %s joins study %s: %s, %d rows, %d folds", name, study.study_name,
                ", ".join(spaces), len(x_train), len(folds.splits))
    try:
        with heartbeat(store, worker.heartbeats.child(name)):
            stopped_by = worker.run()
    finally:
        runs.close()
    best = worker.best()
    if best is not None:
        runs.finish(objective.metric.value, best.value,
                    {"trial": best.number, **best.params})
    logger.info("Worker %s stops (%s) after %d trials", name, stopped_by, worker.finished)
    return SearchWorkerResult(trials=worker.finished, stopped_by=stopped_by)
