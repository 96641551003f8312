"""Input drift: the training reference, the live counts a model server keeps, and the scores.

The trainer builds a `DriftReference` from the training split: per numeric feature the cut
points of bins from its quantiles and the share of training values in each bin, per
categorical feature the shares of its most frequent categories (and of the rest), plus
each feature's missing rate. A model server counts live inputs in the same bins
(`FeatureCounts`: fixed size, whatever the traffic), the operator adds the counts of every
replica (`merge`) and scores them against the reference (`score`): PSI for numeric
features, Jensen-Shannon distance for categorical ones, the shift in missing rate and the
share of categories never seen in training. Drift is detected only over a window of at
least `DriftThresholds.min_rows` rows, so a small sample never raises an alarm.

Pydantic and the standard library only, as the whole contract (the operator imports it
without numpy): the vectors are a few dozen slots long. The model server counts its
batches with numpy in the same bins (`bisect_right` here, `searchsorted(side="right")`
there).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from enum import StrEnum
from typing import Any

from pydantic import Field, model_validator

from mlcycle_contract.api.common import ApiModel
from mlcycle_contract.environment import EnvVar

REFERENCE_ARTIFACT = "drift/reference.json"
"""Where the trainer logs the reference, in the artifacts of the model version's run."""
TAG_DRIFT_REFERENCE = "mlcycle.drift.reference"
"""Model version tag naming that artifact; a version without it has no reference."""
DRIFT_PATH = "/drift"
"""The model server's endpoint answering `DriftWindow` (the operator merges replicas')."""

# The model server's drift settings (ModelDeployment spec.monitoring.drift sets them).
DRIFT = EnvVar(
    "MLCYCLE_DRIFT",
    "false",
    "Count live inputs against the served version's drift reference ('true' or 'false'). "
    "A version without a reference is served unmonitored, /drift answers NoReference.",
)
DRIFT_WINDOW_ROWS = EnvVar(
    "MLCYCLE_DRIFT_WINDOW_ROWS", "500", "Rows in the drift window (the newest ones)."
)
DRIFT_WINDOW_SECONDS = EnvVar(
    "MLCYCLE_DRIFT_WINDOW_SECONDS", "3600", "Oldest age, in seconds, of a row in the window."
)
DRIFT_PSI = EnvVar("MLCYCLE_DRIFT_PSI", "0.2", "PSI above which a numeric feature drifted.")
DRIFT_JENSEN_SHANNON = EnvVar(
    "MLCYCLE_DRIFT_JENSEN_SHANNON",
    "0.1",
    "Jensen-Shannon distance, in (0, 1], at or above which a categorical feature drifted.",
)
DRIFT_MISSING_SHIFT = EnvVar(
    "MLCYCLE_DRIFT_MISSING_SHIFT",
    "0.1",
    "Change of a feature's missing rate, in (0, 1], at or above which it drifted.",
)
DRIFT_UNSEEN_SHARE = EnvVar(
    "MLCYCLE_DRIFT_UNSEEN_SHARE",
    "0.1",
    "Rise of a categorical feature's share of unseen values, in (0, 1], at or above which "
    "it drifted.",
)
DRIFT_MIN_ROWS = EnvVar(
    "MLCYCLE_DRIFT_MIN_ROWS", "200", "Fewest rows in the window before drift is detected."
)
DRIFT_SETTINGS = (
    DRIFT,
    DRIFT_WINDOW_ROWS,
    DRIFT_WINDOW_SECONDS,
    DRIFT_PSI,
    DRIFT_JENSEN_SHANNON,
    DRIFT_MISSING_SHIFT,
    DRIFT_UNSEEN_SHARE,
    DRIFT_MIN_ROWS,
)

NUMERIC_BINS = 10
MAX_CATEGORIES = 50
"""The most frequent categories kept; rarer ones share the last slot with unseen ones."""
EPSILON = 1e-4
"""Floor of a share in PSI, so an empty bin gives a finite score."""
QUANTILE_ROUNDING = 12
"""Significant digits of a cut point, so JSON keeps the reference exact."""


class FeatureKind(StrEnum):
    NUMERIC = "numeric"
    CATEGORICAL = "categorical"


class FeatureReference(ApiModel):
    """One feature of the training split.

    Numeric: `edges` are ascending cut points; a value v falls in bin
    `searchsorted(edges, v, side="right")`, so there are len(edges) + 1 bins.
    Categorical: `categories` are the most frequent training values; slot i is category i
    and the last slot holds every other value (rare in training, or never seen).
    `proportions` are the training shares of those slots, among non-missing values.
    """

    name: str = Field(description="Column name, as in the model signature.")
    kind: FeatureKind = Field(description="numeric or categorical.")
    edges: list[float] = Field(default_factory=list, description="Numeric: bin cut points.")
    categories: list[str] = Field(
        default_factory=list, description="Categorical: kept categories, most frequent first."
    )
    proportions: list[float] = Field(description="Training share of each slot.")
    missing_rate: float = Field(ge=0, le=1, description="Training share of missing values.")

    @property
    def slots(self) -> int:
        return len(self.edges) + 1 if self.kind is FeatureKind.NUMERIC else len(self.categories) + 1

    @model_validator(mode="after")
    def _consistent(self) -> FeatureReference:
        if len(self.proportions) != self.slots:
            raise ValueError(
                f"feature {self.name!r}: {len(self.proportions)} proportions for {self.slots} slots"
            )
        if any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)):
            raise ValueError(f"feature {self.name!r}: edges must be strictly ascending")
        return self


class DriftReference(ApiModel):
    """The training split's distribution, feature by feature, in signature order."""

    rows: int = Field(ge=0, description="Training rows it was computed from.")
    features: list[FeatureReference] = Field(description="One entry per model input.")


class FeatureCounts(ApiModel):
    """Live values of one feature: per reference slot, and missing."""

    counts: list[int] = Field(description="Values per slot (the reference's layout).")
    missing: int = Field(default=0, ge=0, description="Missing values.")


class DriftCounts(ApiModel):
    """What one server saw over its window: mergeable by adding."""

    rows: int = Field(ge=0, description="Rows counted.")
    features: dict[str, FeatureCounts] = Field(description="Counts per feature name.")


class DriftThresholds(ApiModel):
    """When a feature counts as drifted."""

    psi: float = Field(default=0.2, gt=0, description="PSI of a numeric feature.")
    jensen_shannon: float = Field(
        default=0.1, gt=0, le=1, description="Jensen-Shannon distance of a categorical feature."
    )
    missing_shift: float = Field(
        default=0.1, gt=0, le=1, description="Absolute change of the missing rate."
    )
    unseen_share: float = Field(
        default=0.1,
        gt=0,
        le=1,
        description="Rise of the share of values outside the reference's kept categories.",
    )
    min_rows: int = Field(default=200, ge=1, description="Fewest rows before any detection.")


class WorkerCounts(ApiModel):
    """One worker process's window, as the other workers of its Pod read it (MLCYCLE_WORKERS
    > 1: the worker answering DRIFT_PATH adds its siblings' counts to its own)."""

    version: str = Field(description="The model version the worker serves.")
    counts: DriftCounts = Field(description="The worker's window when written.")
    oldest_seconds: float | None = Field(
        default=None, description="The age of its oldest counted rows when written."
    )


class DriftWindow(ApiModel):
    """A model server's answer on DRIFT_PATH: its reference, raw counts and own scores."""

    version: str = Field(description="The model version served (its reference).")
    window_rows: int = Field(ge=1, description="Configured rows of the window.")
    window_seconds: float = Field(gt=0, description="Configured age limit of the window.")
    reference: DriftReference = Field(description="The training reference.")
    counts: DriftCounts = Field(description="Counts of the current window.")
    scores: DriftScores = Field(description="This server's scores (one replica's view).")
    oldest_seconds: float | None = Field(
        default=None,
        ge=0,
        description="Age of the oldest sub-window holding rows (an upper bound on the oldest "
        "row's age); none while the window is empty.",
    )


class FeatureScore(ApiModel):
    """One feature's drift over a window."""

    name: str = Field(description="Feature name.")
    kind: FeatureKind = Field(description="numeric or categorical.")
    score: float | None = Field(
        default=None,
        description="PSI (numeric) or Jensen-Shannon distance (categorical); none without "
        "non-missing values.",
    )
    missing_shift: float = Field(description="Live minus training missing rate.")
    unseen_share: float | None = Field(
        default=None, description="Categorical: share of values outside the kept categories."
    )
    drifted: bool = Field(description="A threshold was crossed (over a large enough window).")


class DriftScores(ApiModel):
    """Every feature's drift over one window of rows."""

    rows: int = Field(ge=0, description="Rows in the window.")
    features: list[FeatureScore] = Field(description="Per feature, in reference order.")
    detected: bool = Field(description="At least min_rows rows and some feature drifted.")


# --- Building the reference (the trainer) ---------------------------------------------------


def _round(value: float) -> float:
    return float(f"{value:.{QUANTILE_ROUNDING}g}")


def numeric_reference(
    name: str, values: Collection[float], bins: int = NUMERIC_BINS
) -> FeatureReference:
    """Bins cut at quantiles of the non-missing values: cut k is the smallest value with at
    least k/bins of the values at or below it (a value that occurs, so a discrete feature
    keeps its values apart); ties collapse into fewer bins. NaN is missing."""
    present = sorted(float(v) for v in values if not _is_missing(v))
    edges: list[float] = []
    if present:
        cuts = (present[max(math.ceil(k * len(present) / bins) - 1, 0)] for k in range(1, bins))
        edges = sorted({_round(cut) for cut in cuts})
    return FeatureReference(
        name=name,
        kind=FeatureKind.NUMERIC,
        edges=edges,
        proportions=_shares(numeric_counts(present, edges)),
        missing_rate=_rate(len(values) - len(present), len(values)),
    )


def categorical_reference(
    name: str, values: Collection[Any], max_categories: int = MAX_CATEGORIES
) -> FeatureReference:
    """The most frequent categories (ties by name, so the result is deterministic)."""
    frequencies = Counter(str(v) for v in values if not _is_missing(v))
    present = sum(frequencies.values())
    ranked = sorted(frequencies.items(), key=lambda item: (-item[1], item[0]))[:max_categories]
    counts = [count for _, count in ranked]
    counts.append(present - sum(counts))
    return FeatureReference(
        name=name,
        kind=FeatureKind.CATEGORICAL,
        categories=[category for category, _ in ranked],
        proportions=_shares(counts),
        missing_rate=_rate(len(values) - present, len(values)),
    )


def numeric_counts(present: Iterable[float], edges: Sequence[float]) -> list[int]:
    """Non-missing values per bin of `edges`."""
    counts = [0] * (len(edges) + 1)
    for value in present:
        counts[bisect_right(edges, value)] += 1
    return counts


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def _shares(counts: Sequence[int]) -> list[float]:
    total = sum(counts)
    return [_round(c / total) if total else 0.0 for c in counts]


# --- Merging and scoring (the server and the operator) --------------------------------------


def empty_counts(reference: DriftReference) -> DriftCounts:
    return DriftCounts(
        rows=0,
        features={f.name: FeatureCounts(counts=[0] * f.slots) for f in reference.features},
    )


def merge(windows: Iterable[DriftCounts]) -> DriftCounts:
    """The counts of several servers (or windows) of the same reference, added."""
    rows = 0
    features: dict[str, FeatureCounts] = {}
    for window in windows:
        rows += window.rows
        for name, counts in window.features.items():
            known = features.get(name)
            if known is None:
                features[name] = counts.model_copy(deep=True)
                continue
            if len(known.counts) != len(counts.counts):
                raise ValueError(f"feature {name!r}: counts of different references")
            known.counts = [a + b for a, b in zip(known.counts, counts.counts, strict=True)]
            known.missing += counts.missing
    return DriftCounts(rows=rows, features=features)


def psi(expected: Sequence[float], actual: Sequence[float], epsilon: float = EPSILON) -> float:
    """Population stability index of two distributions over the same bins."""
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(e, epsilon), max(a, epsilon)
        total += (a - e) * math.log(a / e)
    return total


def js_distance(expected: Sequence[float], actual: Sequence[float]) -> float:
    """Jensen-Shannon distance, base 2 (0: the same, 1: disjoint), of two distributions
    (normalised here, as scipy.spatial.distance.jensenshannon does)."""
    p_total, q_total = sum(expected), sum(actual)
    if p_total <= 0 or q_total <= 0:
        return 0.0 if p_total == q_total else 1.0
    divergence = 0.0
    for p_raw, q_raw in zip(expected, actual, strict=True):
        p, q = p_raw / p_total, q_raw / q_total
        m = (p + q) / 2
        if p > 0:
            divergence += p * math.log2(p / m) / 2
        if q > 0:
            divergence += q * math.log2(q / m) / 2
    return math.sqrt(max(divergence, 0.0))


def score_feature(
    reference: FeatureReference, counts: FeatureCounts, thresholds: DriftThresholds, rows: int
) -> FeatureScore:
    present = sum(counts.counts)
    missing_shift = _rate(counts.missing, rows) - reference.missing_rate if rows else 0.0
    score: float | None = None
    unseen: float | None = None
    if present > 0:
        shares = [c / present for c in counts.counts]
        if reference.kind is FeatureKind.NUMERIC:
            score = psi(reference.proportions, shares)
        else:
            score = js_distance(reference.proportions, shares)
            unseen = shares[-1]
    limit = thresholds.psi if reference.kind is FeatureKind.NUMERIC else thresholds.jensen_shannon
    drifted = rows >= thresholds.min_rows and (
        (score is not None and score >= limit)
        or abs(missing_shift) >= thresholds.missing_shift
        or (unseen is not None and unseen - reference.proportions[-1] >= thresholds.unseen_share)
    )
    return FeatureScore(
        name=reference.name,
        kind=reference.kind,
        score=None if score is None else round(score, 6),
        missing_shift=round(missing_shift, 6),
        unseen_share=None if unseen is None else round(unseen, 6),
        drifted=drifted,
    )


def score(
    reference: DriftReference, counts: DriftCounts, thresholds: DriftThresholds
) -> DriftScores:
    """Each feature's drift over the window of `counts`, and whether any feature drifted."""
    features = []
    for feature in reference.features:
        live = counts.features.get(feature.name) or FeatureCounts(counts=[0] * feature.slots)
        if len(live.counts) != feature.slots:
            raise ValueError(
                f"feature {feature.name!r}: {len(live.counts)} counts for {feature.slots} slots"
            )
        features.append(score_feature(feature, live, thresholds, counts.rows))
    return DriftScores(
        rows=counts.rows,
        features=features,
        detected=any(f.drifted for f in features),
    )


DriftWindow.model_rebuild()
