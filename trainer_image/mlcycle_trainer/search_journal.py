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
from collections.abc import Iterable
from typing import Any

from optuna.storages.journal import BaseJournalBackend, JournalStorage

from mlcycle_trainer.storage import ObjectStore, S3Location

KEY_DIGITS = 12


class S3JournalBackend(BaseJournalBackend):
    """Optuna journal records under `prefix`, one object per appended batch."""

    def __init__(self, store: ObjectStore, prefix: S3Location) -> None:
        self._store = store
        self._prefix = prefix
        self._end = 0  # the number the next batch is written at, as far as this process knows

    def _location(self, number: int) -> S3Location:
        return self._prefix.child(f"{number:0{KEY_DIGITS}d}.json")

    def read_logs(self, log_number_from: int) -> Iterable[dict[str, Any]]:
        """Every record numbered `log_number_from` or later, in order.

        Optuna asks only from where its last read ended, which is a batch boundary."""
        start_after = self._location(log_number_from - 1).key if log_number_from > 0 else ""
        records: list[dict[str, Any]] = []
        number = log_number_from
        for key in self._store.keys_after(self._prefix.child(""), start_after):
            if key != self._location(number).key:
                break  # a gap cannot happen: a batch is only written where the last one ended
            batch = json.loads(self._store.get(S3Location(self._prefix.bucket, key)))
            records.extend(batch)
            number += len(batch)
        self._end = max(self._end, number)
        return records

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        data = json.dumps(logs, separators=(",", ":")).encode()
        while not self._store.put_new(self._location(self._end), data, "application/json"):
            # Another worker wrote there first: skip its batch and try after it.
            self._end += len(json.loads(self._store.get(self._location(self._end))))
        self._end += len(logs)


def journal_storage(store: ObjectStore, prefix: S3Location) -> JournalStorage:
    return JournalStorage(S3JournalBackend(store, prefix))
