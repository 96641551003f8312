"""An Optuna journal kept as numbered objects in S3: the study every worker of a search shares.

Optuna's `JournalStorage` replays an append-only log of operations. This backend stores each
appended batch as one object whose key is the number of its first record, written with a
conditional put (`If-None-Match: *`): of two workers appending at the same number, the
store lets exactly one succeed, and the other reads the winner's batch and tries the next
number. No locks, no server of our own: the study survives a worker's or the operator's
crash, and parallel writers never lose or duplicate a record.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable
from typing import Any

from optuna.storages.journal import BaseJournalBackend, JournalStorage

from mlcycle_trainer.storage import ObjectStore, S3Location

KEY_DIGITS = 12
REFRESH_SECONDS = 0.5


class S3JournalBackend(BaseJournalBackend):
    """Optuna journal records under `prefix`, one object per appended batch.

    Optuna reads the journal before nearly every operation (dozens of times per trial); this
    backend lists the store for others' records at most every `refresh_seconds` and otherwise
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


def journal_storage(store: ObjectStore, prefix: S3Location) -> JournalStorage:
    return JournalStorage(S3JournalBackend(store, prefix))
