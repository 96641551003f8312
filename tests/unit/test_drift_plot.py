"""The plot a drift detection leaves in the served version's run: shares per slot, labels,
the PNG and its numbers."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest

from mlcycle.drift import merge_replicas
from mlcycle.drift_plot import draw, file_stem, numbers, shares, slot_labels
from mlcycle_contract import drift
from mlcycle_contract.drift import (
    DriftCounts,
    DriftReference,
    DriftThresholds,
    DriftWindow,
    FeatureCounts,
    categorical_reference,
    numeric_counts,
    numeric_reference,
)

RNG = np.random.default_rng(11)
REFERENCE = DriftReference(rows=1000, features=[
    numeric_reference("size", RNG.normal(size=1000)),
    categorical_reference("colour", ["red"] * 700 + ["blue"] * 300),
])
AT = datetime(2026, 12, 1, 4, 30, tzinfo=UTC)


def _window(sizes: np.ndarray, colours: list[int]) -> DriftWindow:
    counts = DriftCounts(rows=len(sizes) + 2, features={
        "size": FeatureCounts(counts=numeric_counts(sizes, REFERENCE.features[0].edges),
                              missing=2),
        "colour": FeatureCounts(counts=colours, missing=len(sizes) + 2 - sum(colours)),
    })
    return DriftWindow(version="3", window_rows=500, window_seconds=60, reference=REFERENCE,
                       counts=counts, scores=drift.score(REFERENCE, counts, DriftThresholds()))


def test_labels_name_each_slot() -> None:
    numeric = numeric_reference("x", [1.0, 2.0, 3.0, 4.0], bins=2)
    assert slot_labels(numeric) == ["<2", ">=2"]
    three = numeric_reference("x", [1.0, 2.0, 3.0], bins=3)
    assert slot_labels(three) == ["<1", "[1, 2)", ">=2"]
    assert slot_labels(REFERENCE.features[1]) == ["red", "blue", "other"]


def test_plot_holds_reference_and_merged_live_shares() -> None:
    shifted = RNG.normal(2.0, 1.0, size=300)
    merged = merge_replicas([_window(shifted[:150], [10, 100, 40]),
                             _window(shifted[150:], [20, 100, 30])], "3", DriftThresholds())
    assert merged is not None
    features = shares(merged.reference, merged.counts, merged.scores)
    size, colour = features
    assert size.drifted and len(size.live) == len(size.reference) == len(size.labels)
    assert sum(size.live) == pytest.approx(1, abs=1e-5)
    assert size.live_missing_rate == round(4 / 304, 6)
    assert colour.live == [0.1, 0.666667, 0.233333] and colour.reference == [0.7, 0.3, 0.0]

    document = json.loads(numbers(features, 3, merged.scores.rows, AT))
    assert document["version"] == 3 and document["rows"] == 304
    assert [f["name"] for f in document["features"]] == ["size", "colour"]
    assert document["features"][0]["kind"] == "numeric"
    png = draw(features, "model m version 3")
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    assert file_stem(3, AT) == "drift/detections/version-3-20261201T043000Z"
