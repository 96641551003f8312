"""MLflow for a search: one parent run per study, one child run per trial with its
hyperparameters, intermediate and final objective values, and how it ended; through MLflow's
REST API (`mlflow_rest`), without importing `mlflow`.

Every worker of a search logs into the same parent run. The first to start creates it and
claims it with a conditional put in the study's prefix; a worker that loses that race
deletes its own run and uses the winner's, so a study has exactly one parent run.

A worker's own trials' requests (a run's creation as the trial starts; its scores and end)
go out in order from one background thread while the trial, or the next one, runs: they
are off the trials' path. Their times are those of the trial's start and end, taken when
they are queued. `flush` waits for them, and raises the first that failed.
"""

from __future__ import annotations

import json
import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from mlcycle_contract.api.search import TrialState
from mlcycle_contract.environment import (
    TAG_SEARCH_ROLE,
    TAG_SEARCH_STUDY,
    TAG_TRIAL_ALGORITHM,
    TAG_TRIAL_ERROR,
    TAG_TRIAL_NUMBER,
    TAG_TRIAL_STATE,
)
from mlcycle_trainer.errors import TRACKING_UNAVAILABLE, TrainerError, Transient
from mlcycle_trainer.mlflow_rest import (
    MAX_PARAM_CHARS,
    Metric,
    MlflowError,
    MlflowRest,
    rest_errors,
)
from mlcycle_trainer.storage import ObjectMissing, ObjectStore, S3Location

logger = logging.getLogger(__name__)

PARENT_TAG = "mlflow.parentRunId"
TAG_TRIAL_WORKER = "mlcycle.trial.worker"  # the worker (Pod name and a suffix) that ran it
INTERMEDIATE_SUFFIX = "_running_mean"
FINISHED, KILLED, FAILED = "FINISHED", "KILLED", "FAILED"  # MLflow's RunStatus
RUN_STATUS = {TrialState.COMPLETE: FINISHED, TrialState.PRUNED: KILLED,
              TrialState.FAILED: FAILED}
# MLflow's basic auth records an experiment's creator's permission only after creating it:
# a moment in which reading it answers 403, even to its creator.
EXPERIMENT_RACE_CODES = ("RESOURCE_ALREADY_EXISTS", "PERMISSION_DENIED")
ACTIVE = "active"
SEARCH_PAGE = 1000  # open runs of a study: one per worker, and the few a dead worker left


def now_ms() -> int:
    return int(time.time() * 1000)


def trial_params(algorithm: str, hyperparameters: dict[str, Any]) -> dict[str, str]:
    """A trial's run parameters: its algorithm and its sampled hyperparameters, as JSON."""
    return {"algorithm": algorithm} | {
        name: json.dumps(value)[:MAX_PARAM_CHARS] for name, value in hyperparameters.items()}


def _experiment_id(client: MlflowRest, name: str) -> str:
    """mlflow.set_experiment's: the experiment of that name, created if there is none."""
    experiment = client.experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(name)
        except MlflowError as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        experiment = client.experiment_by_name(name)
        if experiment is None:
            raise MlflowError(f"experiment {name!r} was created and is gone",
                              "RESOURCE_ALREADY_EXISTS")
    if experiment.get("lifecycle_stage", ACTIVE) != ACTIVE:
        raise MlflowError(f"Cannot set a deleted experiment {name!r} as the active experiment. "
                          "You can restore the experiment, or permanently delete the "
                          "experiment to create a new one.", "INVALID_PARAMETER_VALUE")
    return str(experiment["experiment_id"])


def ensure_experiment(client: MlflowRest, name: str, attempts: int = 6,
                      pause_s: float = 0.5) -> str:
    """The experiment's id, creating it if needed, tolerating a concurrent creator: another
    worker of the search, or another Pod of the namespace, may create it first
    (`tracking.ensure_experiment`, for the `train` command)."""
    with rest_errors(f"opening experiment {name!r}"):
        for _ in range(attempts - 1):
            try:
                return _experiment_id(client, name)
            except MlflowError as exc:
                if exc.error_code not in EXPERIMENT_RACE_CODES:
                    raise
            time.sleep(pause_s)
        return _experiment_id(client, name)


class SearchTracking:
    """The study's parent run and its trials' child runs in one experiment."""

    def __init__(self, client: MlflowRest, experiment_id: str, study: str,
                 parent_run_id: str) -> None:
        self.client = client
        self.experiment_id = experiment_id
        self.study = study
        self.parent_run_id = parent_run_id
        self._sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mlflow-runs")
        self._queued: list[Future[Any]] = []

    @classmethod
    def open(cls, client: MlflowRest, experiment_id: str, study: str, run_name: str,
             tags: dict[str, str], store: ObjectStore, marker: S3Location) -> SearchTracking:
        """The study's parent run, created by the first worker to get here."""
        try:
            return cls(client, experiment_id, study, json.loads(store.get(marker))["runId"])
        except ObjectMissing:
            pass
        with rest_errors("starting the search's parent run"):
            run_id = client.create_run(experiment_id, run_name, {
                **tags, TAG_SEARCH_STUDY: study, TAG_SEARCH_ROLE: "parent"}, now_ms())
        if not store.put_new(marker, json.dumps({"runId": run_id}).encode(), "application/json"):
            with rest_errors("dropping a duplicate parent run"):
                client.delete_run(run_id)
            run_id = json.loads(store.get(marker))["runId"]
        return cls(client, experiment_id, study, run_id)

    def _queue(self, send: Any) -> Future[Any]:
        self.check()
        future = self._sender.submit(send)
        self._queued.append(future)
        return future

    def start_trial(self, number: int, algorithm: str, tags: dict[str, str]) -> Future[str]:
        """A running child run of the trial, created in the background: its id once created.
        Its hyperparameters come with its end, in the same request as its scores
        (`end_trial`): a request fewer per trial."""
        started = now_ms()

        def create() -> str:
            with rest_errors(f"starting the run of trial {number}"):
                return self.client.create_run(self.experiment_id, f"trial-{number}", {
                    **tags,
                    PARENT_TAG: self.parent_run_id,
                    TAG_SEARCH_STUDY: self.study,
                    TAG_SEARCH_ROLE: "trial",
                    TAG_TRIAL_NUMBER: str(number),
                    TAG_TRIAL_ALGORITHM: algorithm,
                    TAG_TRIAL_STATE: TrialState.RUNNING.value,
                }, started)

        return self._queue(create)

    def end_trial_later(self, run_id: str, state: TrialState, metric: str,
                        intermediate: dict[int, float], value: float | None,
                        error: str | None = None, params: dict[str, str] | None = None) -> None:
        """`end_trial` in the background, dated now."""
        ended = now_ms()
        self._queue(lambda: self.end_trial(run_id, state, metric, intermediate, value, error,
                                           params, ended))

    def check(self) -> None:
        """Raises the first background request that failed."""
        while self._queued and self._queued[0].done():
            self._queued.pop(0).result()

    def flush(self, timeout: float) -> None:
        """Waits for the background requests; raises the first that failed, or Transient if
        they take longer than `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while self._queued:
            try:
                failure = self._queued[0].exception(max(0.0, deadline - time.monotonic()))
            except FutureTimeout:
                raise Transient(TRACKING_UNAVAILABLE, f"MLflow did not take {len(self._queued)} "
                                f"requests of the trials' runs within {timeout:.0f} s") from None
            self._queued.pop(0)
            if failure is not None:
                raise failure

    def flush_quietly(self, timeout: float) -> None:
        """`flush` on the way out after another error, which matters more: a failure here
        is only logged."""
        try:
            self.flush(timeout)
        except TrainerError as exc:
            logger.warning("Trial runs left unended in MLflow: %s", exc.message)

    def close(self) -> None:
        self._sender.shutdown(wait=False, cancel_futures=True)

    def open_trial_runs(self) -> list[tuple[str, int, str]]:
        """The study's trial runs still Running in MLflow: (run id, trial number, worker)."""
        with rest_errors("looking up the running trials' runs"):
            runs = self.client.search_runs(
                [self.experiment_id], max_results=SEARCH_PAGE,
                filter_string=f"tags.`{TAG_SEARCH_STUDY}` = '{self.study}' and "
                f"tags.`{TAG_SEARCH_ROLE}` = 'trial' and attributes.status = 'RUNNING'")
        found = []
        for run in runs:
            tags = {tag["key"]: tag.get("value", "") for tag in run["data"].get("tags", [])}
            found.append((str(run["info"]["run_id"]), int(tags[TAG_TRIAL_NUMBER]),
                          tags.get(TAG_TRIAL_WORKER, "")))
        return found

    def trial_run(self, number: int) -> str | None:
        """The run of the study's trial `number`, when its worker created one."""
        with rest_errors(f"looking up the run of trial {number}"):
            runs = self.client.search_runs(
                [self.experiment_id], max_results=1,
                filter_string=f"tags.`{TAG_SEARCH_STUDY}` = '{self.study}' and "
                f"tags.`{TAG_SEARCH_ROLE}` = 'trial' and "
                f"tags.`{TAG_TRIAL_NUMBER}` = '{number}'")
        return str(runs[0]["info"]["run_id"]) if runs else None

    def end_trial(self, run_id: str, state: TrialState, metric: str,
                  intermediate: dict[int, float], value: float | None,
                  error: str | None = None, params: dict[str, str] | None = None,
                  ended: int | None = None) -> None:
        """The trial's hyperparameters (`trial_params`), intermediate values (one per step,
        `search_objective`), objective value and end (`ended`, or now)."""
        now = ended or now_ms()
        metrics = [Metric(metric + INTERMEDIATE_SUFFIX, score, now, step)
                   for step, score in sorted(intermediate.items())]
        if value is not None:
            metrics.append(Metric(metric, value, now, 0))
        tags = {TAG_TRIAL_STATE: state.value}
        if error:
            tags[TAG_TRIAL_ERROR] = error[:5000]
        with rest_errors(f"ending run {run_id}"):
            self.client.log_batch(run_id, metrics, params or {}, tags)
            self.client.update_run(run_id, RUN_STATUS[state], ended or now_ms())

    def finish(self, metric: str, best_value: float | None, best: dict[str, Any]) -> None:
        """The study is over: the parent run gets the best trial and ends."""
        with rest_errors("ending the search's parent run"):
            if best_value is not None:
                self.client.log_batch(
                    self.parent_run_id, [Metric(f"best_{metric}", best_value, now_ms(), 0)], {},
                    {f"mlcycle.best.{name}": json.dumps(value)[:MAX_PARAM_CHARS]
                     for name, value in best.items()})
            self.client.update_run(self.parent_run_id, FINISHED, now_ms())
