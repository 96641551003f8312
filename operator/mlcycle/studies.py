"""A search's trials as the operator reads them: from MLflow, where every worker records
each trial as a child run of the study's parent run.

The study itself (Optuna's journal) lives in the namespace's S3 prefix, which the operator
holds no credentials for (only its Pods do, through their Secret); MLflow, which the operator
reads anyway, carries every trial's number, algorithm, hyperparameters, state and value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from mlcycle.mlflow_api import Mlflow, Run
from mlcycle_contract.api.learning import Algorithm, Metric
from mlcycle_contract.api.search import TrialState, TrialSummary
from mlcycle_contract.environment import (
    TAG_SEARCH_ROLE,
    TAG_SEARCH_STUDY,
    TAG_TRIAL_ALGORITHM,
    TAG_TRIAL_ERROR,
    TAG_TRIAL_NUMBER,
    TAG_TRIAL_STATE,
)

PAGE = 1000


@dataclass(frozen=True)
class Trials:
    """The study's trials, its parent run, and the errors of failed trials."""

    trials: list[TrialSummary]
    parent_run_id: str | None
    experiment_id: str | None
    errors: dict[int, str]


def _summary(run: Run, metric: Metric) -> TrialSummary:
    tags, params = run.tags, run.params
    return TrialSummary(
        number=int(tags[TAG_TRIAL_NUMBER]),
        algorithm=Algorithm(tags[TAG_TRIAL_ALGORITHM]),
        value=run.metrics.get(metric.value),
        state=TrialState(tags[TAG_TRIAL_STATE]),
        hyperparameters=json.dumps({name: json.loads(value) for name, value in params.items()
                                    if name != "algorithm"}, sort_keys=True),
        run_id=run.run_id,
    )


def read_trials(tracking_uri: str, experiment: str, study: str, metric: Metric) -> Trials:
    """Every trial of the study recorded so far (none before the first worker starts)."""
    client = Mlflow.admin(tracking_uri)
    experiment_id = client.get_experiment_id(experiment)
    if experiment_id is None:
        return Trials([], None, None, {})
    runs: list[Run] = []
    token: str | None = None
    while True:
        page = client.search_runs([experiment_id],
                                  filter_string=f"tags.`{TAG_SEARCH_STUDY}` = '{study}'",
                                  max_results=PAGE, page_token=token)
        runs += page.items
        token = page.token
        if not token:
            break
    trials = [run for run in runs if run.tags.get(TAG_SEARCH_ROLE) == "trial"]
    parent = next((run.run_id for run in runs if run.tags.get(TAG_SEARCH_ROLE) == "parent"),
                  None)
    summaries = sorted((_summary(run, metric) for run in trials), key=lambda t: t.number)
    errors = {int(run.tags[TAG_TRIAL_NUMBER]): run.tags[TAG_TRIAL_ERROR]
              for run in trials if TAG_TRIAL_ERROR in run.tags}
    return Trials(summaries, parent, experiment_id, errors)
