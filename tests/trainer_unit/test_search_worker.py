"""A search worker and the trials of a worker that died: failed in the study and in MLflow,
dropped when they never reached MLflow, and waited for before the last worker leaves."""

from __future__ import annotations

import json
import time
from concurrent.futures import Future

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
    """MLflow's trial runs as the worker sees them: created, looked up, ended (at once or
    from the worker's queue, which `flush` empties), and those still Running."""

    def __init__(self, known: dict[int, str] | None = None) -> None:
        self.known = dict(known or {})
        self.ended: dict[str, tuple[TrialState, str | None]] = {}
        self.params: dict[str, dict[str, str]] = {}
        self.values: dict[str, tuple[float | None, dict[int, float]]] = {}
        self.queued: list[tuple[str, TrialState, str | None, dict[str, str] | None]] = []
        self.open: list[tuple[str, int, str]] = []  # Running runs of other workers
        self.flushes: list[float] = []

    def start_trial(self, number: int, algorithm: str, tags: dict[str, str]) -> Future[str]:
        self.known[number] = f"run-{number}"
        created: Future[str] = Future()
        created.set_result(self.known[number])
        return created

    def end_trial_later(self, run_id: str, state: TrialState, metric: str,
                        intermediate: dict[int, float], value: float | None,
                        error: str | None = None, params: dict[str, str] | None = None) -> None:
        self.queued.append((run_id, state, error, params))

    def flush(self, timeout: float) -> None:
        self.flushes.append(timeout)
        for run_id, state, error, params in self.queued:
            self.ended[run_id] = (state, error)
            self.params[run_id] = dict(params or {})
        self.queued = []

    def flush_quietly(self, timeout: float) -> None:
        self.flush(timeout)

    def open_trial_runs(self) -> list[tuple[str, int, str]]:
        return [run for run in self.open if run[0] not in self.ended]

    def trial_run(self, number: int) -> str | None:
        return self.known.get(number)

    def end_trial(self, run_id: str, state: TrialState, metric: str,
                  intermediate: dict[int, float], value: float | None,
                  error: str | None = None, params: dict[str, str] | None = None,
                  ended: int | None = None) -> None:
        self.ended[run_id] = (state, error)
        self.params[run_id] = dict(params or {})
        self.values[run_id] = (value, intermediate)


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


def _finished_by_a_dead_worker(worker: Worker, runs: Runs, value: float) -> optuna.Trial:
    """A trial another worker ran and told the study, then died before its queued MLflow
    requests went out: its run is still Running."""
    trial = _lost_trial(worker, "run-0")
    trial.set_user_attr(ATTR_ERROR, "kept")  # whatever the study holds goes to the run
    trial.report(0.5, 0)
    trial.report(0.75, 1)
    worker.study.tell(trial, value)
    runs.known[trial.number] = "run-0"
    runs.open.append(("run-0", trial.number, "dead"))
    return trial


def test_a_run_left_running_after_its_trial_ended_is_ended_from_the_study() -> None:
    runs = Runs()
    worker = _worker(runs, 2)
    trial = _finished_by_a_dead_worker(worker, runs, 0.9)
    assert worker.run() == "maxTrials"
    assert runs.ended["run-0"] == (TrialState.COMPLETE, "kept")
    assert runs.values["run-0"] == (0.9, {0: 0.5, 1: 0.75})
    assert runs.params["run-0"] == {"algorithm": "logistic_regression",
                                    "C": json.dumps(trial.params["C"])}
    assert runs.ended.keys() == {"run-0", "run-1"}  # and its own trial's, flushed


def test_the_last_worker_waits_for_a_run_left_running_until_its_worker_is_stale() -> None:
    runs, store = Runs(), Store(beats=3)
    worker = _worker(runs, 1, store)
    _finished_by_a_dead_worker(worker, runs, 0.9)
    assert worker.run() == "maxTrials"
    assert store.reads == 4  # fresh three times: waited; stale at the fourth look
    assert runs.ended == {"run-0": (TrialState.COMPLETE, "kept")}


def test_a_stopped_worker_sends_its_queued_ends_before_it_goes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runs = Runs()
    worker = _worker(runs, 3)

    def stopped(*_: object) -> float:
        raise search.Terminated("stopped by signal SIGTERM")

    monkeypatch.setattr(search, "evaluate", stopped)
    with pytest.raises(search.Terminated):
        worker.run()
    assert runs.flushes == [search.FLUSH_ON_ERROR_SECONDS]
    (trial,) = worker.counted()
    assert trial.state == OptunaState.FAIL
    assert runs.ended == {"run-0": (TrialState.FAILED,
                                    "Terminated: the worker Pod was stopped")}
