"""The S3 journal with a trial's details written in batches: the journal ends up holding what
one object per record held, whatever another worker wrote in between, in a few objects."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from mlcycle_trainer import search_journal
from mlcycle_trainer.search_journal import S3JournalBackend, S3JournalStorage
from mlcycle_trainer.storage import S3Location
from tests.trainer_unit.memory_store import MemoryStore

optuna.logging.set_verbosity(optuna.logging.WARNING)
PREFIX = S3Location("bucket", "study/journal")


def _storage(store: MemoryStore, refresh_seconds: float = 0,
             batch_seconds: float = 3600) -> S3JournalStorage:
    """Reading others' records at every read; batching however slowly the trial goes."""
    return S3JournalStorage(S3JournalBackend(store, PREFIX,  # type: ignore[arg-type]
                                             refresh_seconds), batch_seconds)


def _study(storage: S3JournalStorage) -> optuna.Study:
    return optuna.create_study(storage=storage, study_name="s", direction="maximize",
                               load_if_exists=True)


def _trials(storage: S3JournalStorage) -> list[tuple[int, TrialState, object, dict[str, object],
                                                       dict[str, object], dict[int, float]]]:
    return [(t.number, t.state, t.value, t.params, t.user_attrs, t.intermediate_values)
            for t in _study(storage).get_trials()]


def test_a_trial_is_three_objects_and_reads_back_whole() -> None:
    store = MemoryStore()
    storage = _storage(store)
    study = _study(storage)
    before = len(store.objects)
    trial = study.ask()
    trial.set_user_attr("worker", "a")
    trial.suggest_int("depth", 2, 12)
    trial.suggest_float("share", 0.2, 1.0)
    assert len(store.objects) == before + 1  # the creation alone
    storage.flush()
    assert len(store.objects) == before + 2
    trial.set_user_attr("run_id", "r")
    trial.report(0.5, 0)
    trial.report(0.7, 1)
    assert trial.should_prune() is False
    study.tell(trial, 0.7)
    assert len(store.objects) == before + 3
    assert _trials(_storage(store)) == _trials(storage)  # a fresh reader: all of it
    ((number, state, value, params, attributes, steps),) = _trials(_storage(store))
    assert (number, state, value) == (0, TrialState.COMPLETE, 0.7)
    assert params.keys() == {"depth", "share"}
    assert attributes == {"worker": "a", "run_id": "r"}
    assert steps == {0: 0.5, 1: 0.7}


def test_a_pruned_trial_takes_its_last_intermediate_value() -> None:
    """Optuna reads a pruned trial's value back from the storage: the values still waiting
    to be written are there."""
    store = MemoryStore()
    storage = _storage(store)
    study = _study(storage)
    trial = study.ask()
    trial.report(0.25, 0)
    study.tell(trial, state=TrialState.PRUNED)
    ((_, state, value, _, _, steps),) = _trials(_storage(store))
    assert (state, value, steps) == (TrialState.PRUNED, 0.25, {0: 0.25})


@pytest.mark.parametrize("refresh_seconds", [0, 3600])
def test_workers_writing_in_between_keep_the_same_journal(refresh_seconds: float) -> None:
    """Worker a's details wait while worker b creates and ends trials (which a reads, or not
    yet): every worker, and a fresh reader, ends up with the same trials, numbered alike."""
    store = MemoryStore()
    first, second = _storage(store, refresh_seconds), _storage(store, refresh_seconds)
    a, b = _study(first), _study(second)
    running = a.ask()
    running.set_user_attr("worker", "a")
    x = running.suggest_int("x", 0, 100)
    other = b.ask()  # number 1, while a's records wait
    other.suggest_int("x", 0, 100)
    b.tell(other, 2.0)
    a.get_trials()  # a reads b's records (or, not refreshing, does not) between its own
    running.report(1.0, 0)
    a.tell(running, float(x))
    second_of_a = a.ask()  # numbered after b's trial
    a.tell(second_of_a, 3.0)
    assert second_of_a.number == 2
    fresh = _storage(store)
    assert _trials(first) == _trials(second) == _trials(fresh)
    assert [(n, s) for n, s, *_ in _trials(fresh)] == [
        (0, TrialState.COMPLETE), (1, TrialState.COMPLETE), (2, TrialState.COMPLETE)]
    assert _trials(fresh)[0][3:] == ({"x": x}, {"worker": "a"}, {0: 1.0})


def test_a_detail_of_a_trial_another_worker_ended_is_refused_as_before() -> None:
    """A worker reaping a trial its owner ended meanwhile: the owner's end wins, the reaper's
    attribute is refused at once and its end is not recorded."""
    store = MemoryStore()
    owner, reaper = _storage(store), _storage(store)
    study = _study(owner)
    trial = study.ask()
    (seen,) = _study(reaper).get_trials()
    study.tell(trial, 1.0)
    reaper.get_all_trials(0)  # the reaper reads the end ...
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        reaper.set_trial_user_attr(seen._trial_id, "error", "lost")
    ((_, state, value, _, attributes, _),) = _trials(_storage(store))
    assert (state, value, attributes) == (TrialState.COMPLETE, 1.0, {})


def test_of_two_workers_reaping_one_trial_the_second_is_refused_once() -> None:
    """Two workers find a trial's worker gone and fail it, one just after the other: the
    second's attribute and end go out in one batch, and are refused by the write that
    sends them, not again at its next read. (Raised at that read, outside the reaping,
    it ended the worker's Pod: with the killed one, two Pods failed, and the Job with them.)"""
    store = MemoryStore()
    owner, first, second = _storage(store), _storage(store), _storage(store)
    _study(owner).ask()
    (seen_first,) = _study(first).get_trials()
    (seen_second,) = _study(second).get_trials()
    for reaper, seen in ((first, seen_first), (second, seen_second)):
        reaper.set_trial_user_attr(seen._trial_id, "error", f"lost, found by {id(reaper)}")
    first.set_trial_state_values(seen_first._trial_id, TrialState.FAIL)
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        second.set_trial_state_values(seen_second._trial_id, TrialState.FAIL)
    expected = [(0, TrialState.FAIL, None, {}, {"error": f"lost, found by {id(first)}"}, {})]
    assert _trials(second) == _trials(first) == _trials(_storage(store)) == expected


def test_a_deferred_write_does_not_read_the_journal_a_read_does() -> None:
    """Optuna syncs after every write; a write that waits need not list the store (during a
    fit, every report would), while reading the trials still lists it."""
    store = MemoryStore()
    storage = _storage(store)
    study = _study(storage)
    trial = study.ask()
    trial.suggest_int("depth", 2, 12)  # the sampler reads the trials
    listed = store.listings
    trial.set_user_attr("worker", "a")
    trial.report(0.5, 0)
    assert store.listings == listed
    study.get_trials()
    assert store.listings == listed + 1
    with pytest.raises(KeyError):  # refused at once: the next read still reads
        storage.set_trial_user_attr(99, "worker", "b")
    study.get_trials()
    assert store.listings == listed + 2


def test_a_detail_long_after_the_last_write_goes_out_at_once(monkeypatch: pytest.MonkeyPatch,
                                                              ) -> None:
    """A slow trial's reports reach the others while it runs (their pruners compare with
    them): one that comes refresh_seconds after this worker's last write is written, with
    what waits; quick ones wait."""
    now = [0.0]
    monkeypatch.setattr(search_journal.time, "monotonic", lambda: now[0])
    store = MemoryStore()
    storage = _storage(store, batch_seconds=5)
    study = _study(storage)
    trial = study.ask()
    trial.report(0.5, 0)
    now[0] += 4
    trial.report(0.6, 1)  # quick: waits
    assert _study(_storage(store)).get_trials()[0].intermediate_values == {}
    now[0] += 5
    trial.report(0.7, 2)  # slow: out, with the others
    assert _study(_storage(store)).get_trials()[0].intermediate_values == {
        0: 0.5, 1: 0.6, 2: 0.7}
    assert trial.should_prune() is False
    study.tell(trial, 0.7)
    ((_, state, value, _, _, steps),) = _trials(_storage(store))
    assert (state, value, steps) == (TrialState.COMPLETE, 0.7, {0: 0.5, 1: 0.6, 2: 0.7})
