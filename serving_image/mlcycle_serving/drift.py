"""Drift monitoring: live inputs counted in the bins of the served version's training data.

With MLCYCLE_DRIFT on, the server reads the version's reference (`drift/reference.json` in
its training run, `mlcycle_contract.drift`) once the model is loaded. A version without
one is served unmonitored: `NoReference`. Each predicted batch is counted in one
vectorised pass: numeric columns against every feature's cut points at once, categorical
ones through a dict per feature. The window is a ring of `SLOTS` sub-windows of
`window_rows / SLOTS` rows or `window_seconds / SLOTS` seconds: memory is one fixed array,
whatever the traffic, and the oldest sub-window is dropped as a new one starts. Rows are
counted in groups of up to a sub-window's rows (or when the window is read), so 1-row
requests pay one vectorised pass per group rather than each. `window()`
answers the raw counts (which the operator adds up over replicas) and this server's scores.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlcycle_contract import drift
from mlcycle_contract.drift import (
    DriftCounts,
    DriftReference,
    DriftScores,
    DriftThresholds,
    DriftWindow,
    FeatureCounts,
    FeatureKind,
)
from mlcycle_serving.model_source import (
    PROXIED_ARTIFACTS,
    ModelReference,
    ModelSourceError,
    NotFound,
    TrackingServer,
)

SLOTS = 10


class NoReference(RuntimeError):
    """The served version has no drift reference (trained before references existed)."""


@dataclass(frozen=True)
class DriftSettings:
    """Monitoring settings, from the DRIFT_* variables."""

    enabled: bool = False
    window_rows: int = int(drift.DRIFT_WINDOW_ROWS.default)
    window_seconds: float = float(drift.DRIFT_WINDOW_SECONDS.default)
    psi: float = float(drift.DRIFT_PSI.default)
    jensen_shannon: float = float(drift.DRIFT_JENSEN_SHANNON.default)
    missing_shift: float = float(drift.DRIFT_MISSING_SHIFT.default)
    unseen_share: float = float(drift.DRIFT_UNSEEN_SHARE.default)
    min_rows: int = int(drift.DRIFT_MIN_ROWS.default)

    @property
    def thresholds(self) -> DriftThresholds:
        return DriftThresholds(
            psi=self.psi,
            jensen_shannon=self.jensen_shannon,
            missing_shift=self.missing_shift,
            unseen_share=self.unseen_share,
            min_rows=self.min_rows,
        )


def load_reference(reference: ModelReference) -> DriftReference:
    """The reference of a registered version (from its run, through the artifact proxy), or
    `drift/reference.json` inside a local model directory."""
    if reference.registered_name is None:
        local = reference.resolved_uri.removeprefix("file://")
        path = Path(local) / drift.REFERENCE_ARTIFACT
        if not path.is_file():
            raise NoReference(f"{reference.resolved_uri} has no {drift.REFERENCE_ARTIFACT}")
        return DriftReference.model_validate_json(path.read_bytes())
    where = f"version {reference.version} of model {reference.registered_name!r}"
    if drift.TAG_DRIFT_REFERENCE not in reference.version_tags or not reference.run_id:
        raise NoReference(f"{where} has no drift reference (trained before references existed)")
    tracking = TrackingServer.from_env()
    run = tracking.get("runs/get", run_id=reference.run_id)["run"]
    artifact_uri = str(run["info"].get("artifact_uri", ""))
    if not artifact_uri.startswith(PROXIED_ARTIFACTS):
        raise ModelSourceError(f"the run of {where} stores artifacts at {artifact_uri!r}")
    root = urllib.parse.urlsplit(artifact_uri).path.strip("/")
    name = reference.version_tags[drift.TAG_DRIFT_REFERENCE]
    folder, _, file = f"{root}/{name}".rpartition("/")
    try:
        present = tracking.files(folder)
    except NotFound:
        present = set()
    if file not in present:  # the proxy answers 500, not 404, for a missing file
        raise NoReference(f"{where} names {name} but its run has no such artifact")
    return DriftReference.model_validate(json.loads(tracking.read(f"{folder}/{file}")))


class DriftMonitor:
    """Counts of the inputs of the last `window_rows` rows (and `window_seconds`)."""

    def __init__(
        self,
        reference: DriftReference,
        columns: tuple[str, ...],
        settings: DriftSettings,
        version: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        position = {name: i for i, name in enumerate(columns)}
        missing = [f.name for f in reference.features if f.name not in position]
        if missing:
            raise NoReference(f"the reference has features the model does not take: {missing}")
        self.reference = reference
        self.settings = settings
        self.version = version
        self._clock = clock
        self._lock = threading.Lock()
        # Layout: each feature owns slots + 1 columns (the last one: missing).
        offsets: list[int] = []
        width = 0
        for feature in reference.features:
            offsets.append(width)
            width += feature.slots + 1
        self._offsets = offsets
        numeric = [i for i, f in enumerate(reference.features) if f.kind is FeatureKind.NUMERIC]
        self._numeric = numeric
        self._numeric_columns = np.array(
            [position[reference.features[i].name] for i in numeric], dtype=np.intp
        )
        longest = max((len(reference.features[i].edges) for i in numeric), default=0)
        self._edges = np.full((len(numeric), max(longest, 1)), np.inf)
        for row, i in enumerate(numeric):
            edges = reference.features[i].edges
            self._edges[row, : len(edges)] = edges
        self._numeric_offsets = np.array([offsets[i] for i in numeric], dtype=np.intp)
        self._numeric_last = np.array(
            [reference.features[i].slots - 1 for i in numeric], dtype=np.intp
        )
        self._numeric_missing = self._numeric_offsets + self._numeric_last + 1
        self._categorical = [
            (
                position[f.name],
                {c: offsets[i] + k for k, c in enumerate(f.categories)},
                offsets[i] + f.slots - 1,
                offsets[i] + f.slots,
            )
            for i, f in enumerate(reference.features)
            if f.kind is FeatureKind.CATEGORICAL
        ]
        self._width = width
        self._counts = np.zeros((SLOTS, width), dtype=np.int64)
        self._rows = np.zeros(SLOTS, dtype=np.int64)
        self._slot_rows = max(1, -(-settings.window_rows // SLOTS))
        self._slot_seconds = settings.window_seconds / SLOTS
        self._current = 0
        self._started = self._clock()
        self._slot_started = np.full(SLOTS, self._started)
        self._pending: list[np.ndarray] = []
        self._pending_rows = 0

    def _advance(self, now: float) -> None:
        """Start new sub-windows for the time passed (each drops the oldest)."""
        elapsed = int((now - self._started) // self._slot_seconds)
        for _ in range(min(elapsed, SLOTS)):
            self._rotate(now)
        if elapsed:
            self._started = now

    def _rotate(self, now: float) -> None:
        self._current = (self._current + 1) % SLOTS
        self._counts[self._current] = 0
        self._rows[self._current] = 0
        self._slot_started[self._current] = now
        self._started = now

    def _indices(self, batch: np.ndarray) -> np.ndarray:
        """The count column of every value of the batch, flattened."""
        parts: list[np.ndarray] = []
        if self._numeric:
            values = batch[:, self._numeric_columns]
            if values.dtype != np.float64:
                values = values.astype(np.float64)
            bins = (values[:, :, None] >= self._edges[None, :, :]).sum(axis=2)
            bins = np.minimum(bins, self._numeric_last) + self._numeric_offsets
            parts.append(np.where(np.isnan(values), self._numeric_missing, bins).ravel())
        for column, slots, other, missing in self._categorical:
            parts.append(
                np.fromiter(
                    (
                        missing if value is None or value != value else slots.get(value, other)
                        for value in batch[:, column]
                    ),
                    dtype=np.intp,
                    count=len(batch),
                )
            )
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.intp)

    def observe(self, batch: np.ndarray) -> None:
        """Count one predicted batch (2-D, in signature column order). Small batches wait
        (at most a sub-window's rows) to be counted together: one vectorised pass costs
        about the same for 1 row as for 50."""
        with self._lock:
            self._pending.append(batch)
            self._pending_rows += len(batch)
            if self._pending_rows >= self._slot_rows:
                self._flush()

    def _flush(self) -> None:
        """Count the waiting rows into the current sub-window (under the lock)."""
        if not self._pending:
            return
        batch = self._pending[0] if len(self._pending) == 1 else np.concatenate(self._pending)
        self._pending.clear()
        self._pending_rows = 0
        now = self._clock()
        self._advance(now)
        if self._rows[self._current] >= self._slot_rows:
            self._rotate(now)
        self._counts[self._current] += np.bincount(self._indices(batch), minlength=self._width)
        self._rows[self._current] += len(batch)

    def counts(self) -> DriftCounts:
        """The window's counts, as the contract carries them."""
        return self.snapshot()[0]

    def snapshot(self) -> tuple[DriftCounts, float | None]:
        """The window's counts, and the age of its oldest sub-window holding rows."""
        with self._lock:
            self._flush()
            now = self._clock()
            self._advance(now)
            total = self._counts.sum(axis=0)
            rows = int(self._rows.sum())
            counted = self._rows > 0
            oldest = float(now - self._slot_started[counted].min()) if counted.any() else None
        features = {}
        for feature, offset in zip(self.reference.features, self._offsets, strict=True):
            block = total[offset : offset + feature.slots + 1].tolist()
            features[feature.name] = FeatureCounts(counts=block[:-1], missing=block[-1])
        return DriftCounts(rows=rows, features=features), oldest

    def scores(self, counts: DriftCounts | None = None) -> DriftScores:
        return drift.score(self.reference, counts or self.counts(), self.settings.thresholds)

    def window(self) -> DriftWindow:
        return self.window_of(*self.snapshot())

    def window_of(self, counts: DriftCounts, oldest_seconds: float | None) -> DriftWindow:
        """The answer on /drift for these counts (this server's, or its Pod's added up)."""
        return DriftWindow(
            version=self.version,
            window_rows=self.settings.window_rows,
            window_seconds=self.settings.window_seconds,
            reference=self.reference,
            counts=counts,
            scores=self.scores(counts),
            oldest_seconds=oldest_seconds,
        )
