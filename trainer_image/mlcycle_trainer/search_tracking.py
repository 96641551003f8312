"""MLflow for a search: one parent run per study, one child run per trial with its
hyperparameters, intermediate and final objective values, and how it ended.

Every worker of a search logs into the same parent run. The first to start creates it and
claims it with a conditional put in the study's prefix; a worker that loses that race
deletes its own run and uses the winner's, so a study has exactly one parent run.
"""

from __future__ import annotations

import json
import time
from typing import Any

from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.tracking import MlflowClient

from mlcycle_contract.api.search import TrialState
from mlcycle_contract.environment import (
    TAG_SEARCH_ROLE,
    TAG_SEARCH_STUDY,
    TAG_TRIAL_ALGORITHM,
    TAG_TRIAL_ERROR,
    TAG_TRIAL_NUMBER,
    TAG_TRIAL_STATE,
)
from mlcycle_trainer.storage import ObjectMissing, ObjectStore, S3Location
from mlcycle_trainer.tracking import MAX_PARAM_CHARS, tracking_errors

PARENT_TAG = "mlflow.parentRunId"
TAG_TRIAL_WORKER = "mlcycle.trial.worker"  # the worker (Pod name and a suffix) that ran it
INTERMEDIATE_SUFFIX = "_running_mean"
RUN_STATUS = {
    TrialState.COMPLETE: RunStatus.to_string(RunStatus.FINISHED),
    TrialState.PRUNED: RunStatus.to_string(RunStatus.KILLED),
    TrialState.FAILED: RunStatus.to_string(RunStatus.FAILED),
}


def trial_params(algorithm: str, hyperparameters: dict[str, Any]) -> list[Param]:
    """A trial's run parameters: its algorithm and its sampled hyperparameters, as JSON."""
    return [Param("algorithm", algorithm)] + [
        Param(name, json.dumps(value)[:MAX_PARAM_CHARS])
        for name, value in hyperparameters.items()]


class SearchTracking:
    """The study's parent run and its trials' child runs in one experiment."""

    def __init__(self, experiment_id: str, study: str, parent_run_id: str) -> None:
        self.client = MlflowClient()
        self.experiment_id = experiment_id
        self.study = study
        self.parent_run_id = parent_run_id

    @classmethod
    def open(cls, experiment_id: str, study: str, run_name: str, tags: dict[str, str],
             store: ObjectStore, marker: S3Location) -> SearchTracking:
        """The study's parent run, created by the first worker to get here."""
        client = MlflowClient()
        try:
            return cls(experiment_id, study, json.loads(store.get(marker))["runId"])
        except ObjectMissing:
            pass
        with tracking_errors("starting the search's parent run"):
            run = client.create_run(experiment_id, run_name=run_name, tags={
                **tags, TAG_SEARCH_STUDY: study, TAG_SEARCH_ROLE: "parent"})
        run_id = str(run.info.run_id)
        if not store.put_new(marker, json.dumps({"runId": run_id}).encode(), "application/json"):
            with tracking_errors("dropping a duplicate parent run"):
                client.delete_run(run_id)
            run_id = json.loads(store.get(marker))["runId"]
        return cls(experiment_id, study, run_id)

    def start_trial(self, number: int, algorithm: str, tags: dict[str, str]) -> str:
        """A running child run of the trial. Its hyperparameters come with its end, in the
        same request as its scores (`end_trial`): a request fewer per trial."""
        with tracking_errors(f"starting the run of trial {number}"):
            run = self.client.create_run(self.experiment_id, run_name=f"trial-{number}", tags={
                **tags,
                PARENT_TAG: self.parent_run_id,
                TAG_SEARCH_STUDY: self.study,
                TAG_SEARCH_ROLE: "trial",
                TAG_TRIAL_NUMBER: str(number),
                TAG_TRIAL_ALGORITHM: algorithm,
                TAG_TRIAL_STATE: TrialState.RUNNING.value,
            })
        return str(run.info.run_id)

    def trial_run(self, number: int) -> str | None:
        """The run of the study's trial `number`, when its worker created one."""
        with tracking_errors(f"looking up the run of trial {number}"):
            runs = self.client.search_runs(
                [self.experiment_id], max_results=1,
                filter_string=f"tags.`{TAG_SEARCH_STUDY}` = '{self.study}' and "
                f"tags.`{TAG_SEARCH_ROLE}` = 'trial' and "
                f"tags.`{TAG_TRIAL_NUMBER}` = '{number}'")
        return str(runs[0].info.run_id) if runs else None

    def end_trial(self, run_id: str, state: TrialState, metric: str,
                  intermediate: dict[int, float], value: float | None,
                  error: str | None = None, params: list[Param] | None = None) -> None:
        """The trial's hyperparameters (`trial_params`), intermediate values (one per step,
        `search_objective`), objective value and end."""
        now = int(time.time() * 1000)
        metrics = [Metric(metric + INTERMEDIATE_SUFFIX, score, now, step)
                   for step, score in sorted(intermediate.items())]
        if value is not None:
            metrics.append(Metric(metric, value, now, 0))
        tags = [RunTag(TAG_TRIAL_STATE, state.value)]
        if error:
            tags.append(RunTag(TAG_TRIAL_ERROR, error[:5000]))
        with tracking_errors(f"ending run {run_id}"):
            self.client.log_batch(run_id, metrics=metrics, params=params or [], tags=tags)
            self.client.set_terminated(run_id, RUN_STATUS[state])

    def finish(self, metric: str, best_value: float | None, best: dict[str, Any]) -> None:
        """The study is over: the parent run gets the best trial and ends."""
        with tracking_errors("ending the search's parent run"):
            if best_value is not None:
                self.client.log_batch(
                    self.parent_run_id,
                    metrics=[Metric(f"best_{metric}", best_value, int(time.time() * 1000), 0)],
                    tags=[RunTag(f"mlcycle.best.{name}", json.dumps(value)[:MAX_PARAM_CHARS])
                          for name, value in best.items()])
            self.client.set_terminated(self.parent_run_id, RunStatus.to_string(RunStatus.FINISHED))
