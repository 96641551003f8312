"""An Optuna journal kept as numbered objects in S3: the study every worker of a search shares.

Optuna's `JournalStorage` replays an append-only log of operations. This backend stores each
appended batch as one object whose key is the number of its first record, written with a
conditional put (`If-None-Match: *`): of two workers appending at the same number, the
store lets exactly one succeed, and the other reads the winner's batch and tries the next
number. No locks, no server of our own: the study survives a worker's or the operator's
crash, and parallel writers never lose or duplicate a record.

Optuna writes one record per call: a trial's creation, each parameter, each attribute, each
intermediate value and its end would be a dozen objects (and a dozen requests) per trial.
`S3JournalStorage` holds back the records that only fill in a trial (parameters, attributes,
intermediate values) and writes them with the next record that creates or ends a trial, or
when the worker asks (`flush`): three objects per trial.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable
from typing import Any

from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages.journal import BaseJournalBackend, JournalStorage
from optuna.storages.journal._storage import JournalOperation

from mlcycle_trainer.storage import ObjectStore, S3Location

KEY_DIGITS = 12
REFRESH_SECONDS = 0.5


class S3JournalBackend(BaseJournalBackend):
    """Optuna journal records under `prefix`, one object per appended batch.

    Optuna reads the journal before nearly every operation (dozens of times per trial); this
    backend lists the store for others' records at most every `refresh_seconds` (counted from
    its last listing or its last write, after which it holds the whole journal) and otherwise
    answers from the records it already holds, which always include its own: another
    worker's report shows up here within that delay. Every record it holds is a contiguous
    prefix of the journal, since a batch is only written where the last one ended.
    """

    def __init__(self, store: ObjectStore, prefix: S3Location,
                 refresh_seconds: float = REFRESH_SECONDS) -> None:
        self._store = store
        self._prefix = prefix
        self._refresh_seconds = refresh_seconds
        self._records: list[dict[str, Any]] = []  # the journal from record 0, as known here
        self._listed_at = -math.inf

    def _location(self, number: int) -> S3Location:
        return self._prefix.child(f"{number:0{KEY_DIGITS}d}.json")

    def _batch_at(self, number: int) -> list[dict[str, Any]]:
        batch: list[dict[str, Any]] = json.loads(self._store.get(self._location(number)))
        return batch

    def _catch_up(self) -> None:
        """Every batch written after the records held here."""
        known = len(self._records)
        start_after = self._location(known - 1).key if known else ""
        for key in self._store.keys_after(self._prefix.child(""), start_after):
            if key != self._location(len(self._records)).key:
                break  # a gap cannot happen: a batch is only written where the last one ended
            self._records.extend(self._batch_at(len(self._records)))
        self._listed_at = time.monotonic()

    def read_logs(self, log_number_from: int) -> Iterable[dict[str, Any]]:
        """Every record numbered `log_number_from` or later, in order."""
        if time.monotonic() - self._listed_at >= self._refresh_seconds:
            self._catch_up()
        return self._records[log_number_from:]

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        data = json.dumps(logs, separators=(",", ":")).encode()
        while not self._store.put_new(self._location(len(self._records)), data,
                                      "application/json"):
            # Another worker wrote there first: take its batch and try after it.
            self._records.extend(self._batch_at(len(self._records)))
        self._records.extend(json.loads(data))
        # The store took the batch at the journal's end: what is held here is the whole
        # journal, as fresh as a listing now would be.
        self._listed_at = time.monotonic()


# What only fills in a trial that exists: it can wait for the trial's next creation or end.
# Applying one twice has the effect of applying it once.
DEFERRED_OPERATIONS = frozenset({
    JournalOperation.SET_TRIAL_PARAM, JournalOperation.SET_TRIAL_USER_ATTR,
    JournalOperation.SET_TRIAL_SYSTEM_ATTR, JournalOperation.SET_TRIAL_INTERMEDIATE_VALUE})


class S3JournalStorage(JournalStorage):
    """Optuna's journal storage on `S3JournalBackend`, writing a trial's details in batches.

    A record that only fills in a trial (`DEFERRED_OPERATIONS`) takes effect here at once, so
    this worker reads its own writes as before, and waits to be written with the next
    record that creates or ends a trial, until `flush`, or until a record comes
    `batch_seconds` after the last; read back from the journal, it is applied again, in
    the journal's order, to the same effect. Such a record concerns a trial that has
    started and not ended; while it waits, another worker writes to that trial only when
    it finds the trial's worker gone, in which case the journal ignores the record either
    way. So the journal holds what it held before, the details arriving later.
    """

    def __init__(self, backend: S3JournalBackend,
                 batch_seconds: float = REFRESH_SECONDS) -> None:
        self._waiting: list[dict[str, Any]] = []  # applied here, not yet in the journal
        self._written_at = -math.inf  # when this worker last wrote or deferred a record
        self._batch_seconds = batch_seconds
        self._deferred_last = False
        super().__init__(backend)

    def _sync_with_backend(self) -> None:
        # Optuna reads the journal after each write to apply that write: one deferred was
        # applied already, and reading others' records can wait for a read that needs them
        # (a listing of the store every `refresh_seconds` during each fit, otherwise).
        if self._deferred_last:
            self._deferred_last = False
            return
        # Optuna raises, as it replays a record of this worker's that the journal ignores
        # (its trial ended meanwhile), to the caller that wrote it, and leaves the rest of
        # the read unapplied. A batch may hold more than one such record (a reaper's
        # attribute and end, after another reaper ended the trial): each later one would
        # raise at some unrelated read. So the whole read is applied, and the first raises.
        refused: Exception | None = None
        while True:
            try:
                super()._sync_with_backend()
                break
            except (UpdateFinishedTrialError, KeyError) as error:  # the record is skipped
                refused = refused or error
        if refused is not None:
            raise refused

    def _write_log(self, op_code: int, extra_fields: dict[str, Any]) -> None:
        # As the journal gives it back: JSON's types, not Optuna's enums.
        log: dict[str, Any] = json.loads(json.dumps(
            {"op_code": op_code, "worker_id": self._replay_result.worker_id, **extra_fields}))
        now = time.monotonic()
        # A record that comes long after the last (a slow trial's report, or a pruner's
        # mark) goes out at once, as others' records reach this worker: batching gains
        # little there, and others' pruners compare with it.
        long_after = now - self._written_at >= self._batch_seconds
        self._written_at = now
        if op_code not in DEFERRED_OPERATIONS or long_after:
            self._backend.append_logs([*self._waiting, log])
            self._waiting = []
            return
        try:  # raises as reading it back would: an unknown or finished trial
            self._replay_result.apply_logs([log])
        finally:
            self._replay_result.log_number_read -= 1  # the journal's next record is not it
        self._waiting.append(log)
        self._deferred_last = True

    def flush(self) -> None:
        """Write the records waiting here, for the other workers to read."""
        with self._thread_lock:
            if self._waiting:
                self._backend.append_logs(self._waiting)
                self._waiting = []
                self._written_at = time.monotonic()


def journal_storage(store: ObjectStore, prefix: S3Location) -> S3JournalStorage:
    return S3JournalStorage(S3JournalBackend(store, prefix))
