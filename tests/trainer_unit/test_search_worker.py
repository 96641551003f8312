"""A search worker and the trials of a worker that died: failed in the study and in MLflow,
dropped when they never reached MLflow, and waited for before the last worker leaves."""

from __future__ import annotations

import json
import time

import optuna
import pandas as pd
import pytest
from optuna.trial import TrialState as OptunaState
from sklearn.datasets import load_iris

from mlcycle_contract.api.learning import Metric, Task
from mlcycle_contract.api.search import TrialState, effective_space
from mlcycle_contract.api.trainingjob import TrainingJobSpec
from mlcycle_trainer import search
from mlcycle_trainer.search import ATTR_ERROR, ATTR_RUN, ATTR_WORKER, Worker
from mlcycle_trainer.search_journal import S3JournalBackend, S3JournalStorage
from mlcycle_trainer.search_objective import folds_for
from mlcycle_trainer.storage import ObjectMissing, S3Location
from tests.trainer_unit.memory_store import MemoryStore

optuna.logging.set_verbosity(optuna.logging.WARNING)


class Store(MemoryStore):
    """The study's prefix in S3: its journal objects, and the heartbeats of another worker,
    who beats `beats` times more, then is silent."""

    def __init__(self, beats: int = 0) -> None:
        super().__init__()
        self.beats = beats
        self.reads = 0  # of heartbeats

    def get(self, location: S3Location) -> bytes:
        if "/heartbeats/" not in location.key:
            return super().get(location)
        self.reads += 1
        if self.reads > self.beats:
            raise ObjectMissing(location.uri)
        return str(time.time() + 3600).encode()  # fresh, however little STALE_SECONDS is


class Runs:
    """MLflow's trial runs as the worker sees them: created, looked up, ended."""

    def __init__(self, known: dict[int, str] | None = None) -> None:
        self.known = dict(known or {})
        self.ended: dict[str, tuple[TrialState, str | None]] = {}
        self.params: dict[str, dict[str, str]] = {}

    def start_trial(self, number: int, algorithm: str, tags: dict[str, str]) -> str:
        self.known[number] = f"run-{number}"
        return self.known[number]

    def trial_run(self, number: int) -> str | None:
        return self.known.get(number)

    def end_trial(self, run_id: str, state: TrialState, metric: str,
                  intermediate: dict[int, float], value: float | None,
                  error: str | None = None, params: dict[str, str] | None = None) -> None:
        self.ended[run_id] = (state, error)
        self.params[run_id] = dict(params or {})


def _worker(runs: Runs, max_trials: int, store: Store | None = None) -> Worker:
    spec = TrainingJobSpec.model_validate({
        "datasetRef": {"name": "iris"}, "algorithm": "logistic_regression",
        "validation": {"folds": 2}, "search": {"maxTrials": max_trials}})
    assert spec.search is not None
    iris = load_iris(as_frame=True)
    x, y = iris.data, pd.Series(iris.target)
    store = store or Store()
    storage = S3JournalStorage(S3JournalBackend(  # reading, batching as slowly as can be
        store, S3Location("b", "study/journal"), refresh_seconds=0),  # type: ignore[arg-type]
        batch_seconds=3600)
    study = optuna.create_study(storage=storage, direction="maximize")
    return Worker(spec, spec.search, effective_space(spec.search, spec.candidate_algorithms),
                  folds_for(x, y, Task.CLASSIFICATION, Metric.ACCURACY, 2, 0), study,
                  storage, runs, store,  # type: ignore[arg-type]
                  S3Location("b", "study/heartbeats"),
                  {}, "alive", None)


def _lost_trial(worker: Worker, run_id: str | None) -> optuna.Trial:
    """A trial another worker started and then died in, its run recorded or not."""
    trial = worker.study.ask()
    trial.set_user_attr(ATTR_WORKER, "dead")
    trial.suggest_float("C", 0.01, 100.0, log=True)
    if run_id:
        trial.set_user_attr(ATTR_RUN, run_id)
    return trial


@pytest.fixture(autouse=True)
def _no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(search, "STALE_SECONDS", 0.0)
    monkeypatch.setattr(search, "SETTLE_SECONDS", 0.0)


@pytest.mark.parametrize("attribute", [True, False])
def test_a_dead_worker_s_trial_ends_failed_in_the_study_and_its_run(attribute: bool) -> None:
    """Its run is found by the trial's number when the worker died before noting its id."""
    runs = Runs({0: "run-0"})
    worker = _worker(runs, 5)
    _lost_trial(worker, "run-0" if attribute else None)
    worker.fail_stale_trials()
    (trial,) = worker.counted()
    assert trial.state == OptunaState.FAIL
    assert trial.user_attrs[ATTR_ERROR] == "WorkerLost: worker dead stopped during the trial"
    assert runs.ended == {"run-0": (TrialState.FAILED, trial.user_attrs[ATTR_ERROR])}
    # Its hyperparameters, which its worker would have logged with its end, from the journal.
    assert runs.params["run-0"] == {"algorithm": "logistic_regression",
                                    "C": json.dumps(trial.params["C"])}


def test_a_trial_s_run_gets_its_hyperparameters_with_its_end() -> None:
    runs = Runs()
    worker = _worker(runs, 1)
    assert worker.run() == "maxTrials"
    (trial,) = worker.counted()
    assert trial.state == OptunaState.COMPLETE
    assert runs.params["run-0"] == {"algorithm": "logistic_regression",
                                    **{name: json.dumps(value)
                                       for name, value in trial.params.items()}}


def test_a_trial_lost_before_its_run_existed_counts_nowhere_and_another_takes_its_place(
) -> None:
    runs = Runs()
    worker = _worker(runs, 3)
    _lost_trial(worker, None)
    assert worker.run() == "maxTrials"
    assert [t.number for t in worker.counted()] == [1, 2, 3]
    assert sorted(runs.known) == [1, 2, 3] and runs.ended.keys() == {"run-1", "run-2", "run-3"}


def test_the_last_worker_leaves_only_when_no_trial_runs_anywhere() -> None:
    """The budget is spent while a dead worker's trial still runs: the worker waits for it
    to be failed rather than leave it Running for good."""
    runs, store = Runs(), Store(beats=2)
    worker = _worker(runs, 2, store)
    _lost_trial(worker, None)  # takes number 0 ...
    runs.known[0] = "run-0"  # ... and reached MLflow
    assert worker.run() == "maxTrials"
    # Beating at its first two looks (before and after trial 1), silent at the third.
    assert store.reads == 3
    states = {t.number: t.state for t in worker.counted()}
    assert states == {0: OptunaState.FAIL, 1: OptunaState.COMPLETE}
    assert runs.ended["run-0"][0] == TrialState.FAILED
    assert not worker.running()
