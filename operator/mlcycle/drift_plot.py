"""What a drift detection leaves in the served version's MLflow run: per feature, the training
reference's shares next to the live window's, as a PNG (matplotlib's Agg backend, imported
only when a detection is drawn) and the same numbers as JSON.

Pure: files from the reference, the merged counts and the scores; the reconciler logs them
through MLflow's artifact proxy (`registry.log_files`).
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import Any

from mlcycle_contract.drift import (
    DriftCounts,
    DriftReference,
    DriftScores,
    FeatureKind,
    FeatureReference,
)

FOLDER = "drift/detections"
"""Where the files go, in the artifacts of the served version's run."""
COLUMNS = 2
DPI = 80


@dataclass(frozen=True)
class FeatureShares:
    """One feature, slot by slot: its label, the training share and the live share."""

    name: str
    kind: FeatureKind
    labels: list[str]
    reference: list[float]
    live: list[float]
    score: float | None
    drifted: bool
    reference_missing_rate: float
    live_missing_rate: float


def shares(reference: DriftReference, counts: DriftCounts,
           scores: DriftScores) -> list[FeatureShares]:
    """Reference and live shares per slot of every feature, in reference order."""
    by_name = {f.name: f for f in scores.features}
    result = []
    for feature in reference.features:
        live = counts.features[feature.name]
        present = sum(live.counts)
        score = by_name[feature.name]
        result.append(FeatureShares(
            name=feature.name,
            kind=feature.kind,
            labels=slot_labels(feature),
            reference=list(feature.proportions),
            live=[round(c / present, 6) if present else 0.0 for c in live.counts],
            score=score.score,
            drifted=score.drifted,
            reference_missing_rate=feature.missing_rate,
            live_missing_rate=round(live.missing / counts.rows, 6) if counts.rows else 0.0,
        ))
    return result


def slot_labels(feature: FeatureReference) -> list[str]:
    """Numeric: `<e0`, `[e0, e1)`, ..., `>=eN`; categorical: the categories, then `other`."""
    if feature.kind is FeatureKind.CATEGORICAL:
        return [*feature.categories, "other"]
    edges = [f"{edge:.3g}" for edge in feature.edges]
    if not edges:
        return ["all"]
    return [f"<{edges[0]}", *(f"[{a}, {b})" for a, b in pairwise(edges)),
            f">={edges[-1]}"]


def file_stem(version: int, at: datetime) -> str:
    return f"{FOLDER}/version-{version}-{at.strftime('%Y%m%dT%H%M%SZ')}"


def numbers(features: list[FeatureShares], version: int, rows: int, at: datetime) -> bytes:
    """The plot's numbers, as JSON."""
    document: dict[str, Any] = {
        "version": version, "rows": rows, "detected_time": at.isoformat(),
        "features": [{**vars(f), "kind": f.kind.value} for f in features]}
    return json.dumps(document, indent=2).encode()


def draw(features: list[FeatureShares], title: str) -> bytes:
    """A bar chart per feature, training share beside live share, drifted ones in red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = math.ceil(len(features) / COLUMNS)
    figure, grid = plt.subplots(rows, COLUMNS, figsize=(6 * COLUMNS, 3 * rows), squeeze=False)
    for axes, feature in zip(grid.flat, features, strict=False):
        positions = range(len(feature.labels))
        axes.bar([p - 0.2 for p in positions], feature.reference, width=0.4,
                 label="training", color="#4878a8")
        axes.bar([p + 0.2 for p in positions], feature.live, width=0.4, label="live",
                 color="#c44e52" if feature.drifted else "#8c8c8c")
        axes.set_xticks(list(positions), feature.labels, rotation=45, ha="right", fontsize=7)
        measure = "PSI" if feature.kind is FeatureKind.NUMERIC else "JS"
        score = "n/a" if feature.score is None else f"{feature.score:.3g}"
        axes.set_title(f"{feature.name}: {measure} {score}"
                       f"{' (drifted)' if feature.drifted else ''}", fontsize=9)
        axes.legend(fontsize=7)
    for axes in list(grid.flat)[len(features):]:
        axes.set_visible(False)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    plt.close(figure)
    return buffer.getvalue()
