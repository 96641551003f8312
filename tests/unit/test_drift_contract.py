"""The drift math shared by trainer, server and operator: reference, merge, PSI, JS, detection."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from mlcycle_contract.drift import (
    DriftCounts,
    DriftReference,
    DriftThresholds,
    FeatureCounts,
    FeatureKind,
    FeatureReference,
    categorical_reference,
    empty_counts,
    js_distance,
    merge,
    numeric_counts,
    numeric_reference,
    psi,
    score,
)


def _counts(reference: DriftReference, columns: dict[str, list[object]]) -> DriftCounts:
    """Counts as a server keeps them, computed the plain way."""
    rows = len(next(iter(columns.values())))
    features = {}
    for feature in reference.features:
        values = columns[feature.name]
        missing = [v is None or (isinstance(v, float) and math.isnan(v)) for v in values]
        present = [v for v, m in zip(values, missing, strict=True) if not m]
        if feature.kind is FeatureKind.NUMERIC:
            counts = numeric_counts(present, feature.edges)
        else:
            slot = {c: i for i, c in enumerate(feature.categories)}
            counts = [0] * feature.slots
            for v in present:
                counts[slot.get(str(v), feature.slots - 1)] += 1
        features[feature.name] = FeatureCounts(counts=counts, missing=sum(missing))
    return DriftCounts(rows=rows, features=features)


def test_numeric_reference_has_ten_quantile_bins_of_a_tenth_each() -> None:
    values = np.random.default_rng(0).normal(size=5000)
    values[:50] = np.nan
    ref = numeric_reference("x", values)
    assert ref.kind is FeatureKind.NUMERIC
    assert len(ref.edges) == 9 and ref.slots == 10
    assert ref.proportions == pytest.approx([0.1] * 10, abs=0.002)
    assert ref.missing_rate == pytest.approx(0.01)
    assert sum(ref.proportions) == pytest.approx(1.0)


def test_numeric_reference_collapses_tied_quantiles() -> None:
    values = np.array([0.0] * 70 + [1.0] * 30)
    ref = numeric_reference("flag", values)
    assert ref.edges == [0.0, 1.0]
    assert ref.proportions == pytest.approx([0.0, 0.7, 0.3])


def test_all_missing_numeric_feature_has_one_empty_bin() -> None:
    ref = numeric_reference("x", np.full(10, np.nan))
    assert ref.edges == [] and ref.proportions == [0.0] and ref.missing_rate == 1.0


def test_categorical_reference_keeps_most_frequent_and_the_rest_slot() -> None:
    values = ["a"] * 5 + ["b"] * 3 + ["c"] * 1 + [None, float("nan")]
    ref = categorical_reference("colour", values, max_categories=2)
    assert ref.categories == ["a", "b"]
    assert ref.proportions == pytest.approx([5 / 9, 3 / 9, 1 / 9])
    assert ref.missing_rate == pytest.approx(2 / 11)


def test_reference_round_trips_through_json_exactly() -> None:
    values = np.random.default_rng(1).normal(size=1000)
    ref = DriftReference(
        rows=1000,
        features=[numeric_reference("x", values), categorical_reference("c", ["u", "v", "u"])],
    )
    again = DriftReference.model_validate_json(ref.model_dump_json())
    assert again == ref
    # the bins the JSON copy makes are the ones the reference's proportions were counted in
    counts = numeric_counts(values, again.features[0].edges)
    assert [c / sum(counts) for c in counts] == pytest.approx(again.features[0].proportions)


def test_reference_rejects_proportions_that_do_not_fit_its_slots() -> None:
    with pytest.raises(ValidationError, match="2 proportions for 3 slots"):
        FeatureReference(
            name="x",
            kind=FeatureKind.NUMERIC,
            edges=[0, 1],
            proportions=[0.5, 0.5],
            missing_rate=0,
        )
    with pytest.raises(ValidationError, match="ascending"):
        FeatureReference(
            name="x",
            kind=FeatureKind.NUMERIC,
            edges=[1, 0],
            proportions=[0.3, 0.3, 0.4],
            missing_rate=0,
        )


def test_psi_is_zero_for_equal_shares_and_finite_for_empty_bins() -> None:
    assert psi([0.25] * 4, [0.25] * 4) == 0.0
    value = psi([0.5, 0.5, 0.0], [0.4, 0.4, 0.2])
    assert math.isfinite(value) and value > 1.0
    assert psi([0.5, 0.5], [0.6, 0.4]) == pytest.approx(0.1 * math.log(1.2) - 0.1 * math.log(0.8))


def test_js_distance_is_zero_for_equal_and_one_for_disjoint() -> None:
    assert js_distance([0.5, 0.5], [0.5, 0.5]) == pytest.approx(0.0, abs=1e-9)
    assert js_distance([1.0, 0.0], [0.0, 1.0]) == pytest.approx(1.0)
    assert js_distance([0.0, 0.0], [1.0, 0.0]) == 1.0


def test_js_distance_agrees_with_scipy_and_numpy_bins_with_bisect() -> None:
    from scipy.spatial.distance import jensenshannon

    p, q = [0.6, 0.3, 0.1, 0.0], [2.0, 5.0, 1.0, 2.0]  # scipy normalises too
    assert js_distance(p, q) == pytest.approx(float(jensenshannon(p, q, base=2)))
    values = np.random.default_rng(2).normal(size=1000)
    edges = numeric_reference("x", values).edges
    bins = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    assert numeric_counts(values, edges) == bins.tolist()
    ordered = np.sort(values)
    assert edges == pytest.approx([ordered[100 * k - 1] for k in range(1, 10)], rel=1e-11)


def test_merge_adds_counts_of_replicas() -> None:
    a = DriftCounts(rows=3, features={"x": FeatureCounts(counts=[1, 2], missing=0)})
    b = DriftCounts(rows=2, features={"x": FeatureCounts(counts=[0, 1], missing=1)})
    merged = merge([a, b])
    assert merged.rows == 5
    assert merged.features["x"] == FeatureCounts(counts=[1, 3], missing=1)
    assert a.features["x"].counts == [1, 2]  # inputs untouched
    with pytest.raises(ValueError, match="different references"):
        merge([a, DriftCounts(rows=1, features={"x": FeatureCounts(counts=[1, 0, 0])})])


rng = np.random.default_rng(7)
TRAIN = {"x": rng.normal(size=5000), "y": rng.normal(10, 2, size=5000)}
COLOURS = ["red"] * 3000 + ["green"] * 1500 + ["blue"] * 500
REFERENCE = DriftReference(
    rows=5000,
    features=[
        numeric_reference("x", TRAIN["x"]),
        numeric_reference("y", TRAIN["y"]),
        categorical_reference("colour", COLOURS),
    ],
)


def _live(rows: int, shift: float = 0.0, colours: list[str] | None = None) -> DriftCounts:
    generator = np.random.default_rng(rows)
    palette = colours or COLOURS
    return _counts(
        REFERENCE,
        {
            "x": list(generator.normal(shift, 1, size=rows)),
            "y": list(generator.normal(10, 2, size=rows)),
            "colour": [palette[i] for i in generator.integers(0, len(palette), size=rows)],
        },
    )


def test_same_distribution_is_not_drift() -> None:
    scores = score(REFERENCE, _live(500), DriftThresholds())
    assert not scores.detected
    assert all(not f.drifted for f in scores.features)
    assert scores.features[0].score is not None and scores.features[0].score < 0.1


def test_one_standard_deviation_shift_is_drift_of_that_feature_only() -> None:
    scores = score(REFERENCE, _live(500, shift=1.0), DriftThresholds())
    assert scores.detected
    by_name = {f.name: f for f in scores.features}
    assert by_name["x"].drifted and by_name["x"].score is not None and by_name["x"].score > 0.5
    assert not by_name["y"].drifted and not by_name["colour"].drifted


def test_small_window_never_raises_an_alarm() -> None:
    scores = score(REFERENCE, _live(50, shift=3.0), DriftThresholds(min_rows=200))
    assert not scores.detected
    assert scores.features[0].score is not None and scores.features[0].score > 1.0


def test_unseen_categories_and_missing_rate_are_drift() -> None:
    unseen = score(REFERENCE, _live(400, colours=["red", "purple"]), DriftThresholds())
    colour = unseen.features[2]
    assert colour.unseen_share == pytest.approx(0.5, abs=0.08) and colour.drifted
    counts = _live(400)
    counts.features["y"].missing = 100
    missing = score(REFERENCE, counts, DriftThresholds())
    assert missing.features[1].missing_shift == pytest.approx(0.25) and missing.detected


def test_no_rows_scores_nothing() -> None:
    scores = score(REFERENCE, empty_counts(REFERENCE), DriftThresholds())
    assert scores.rows == 0 and not scores.detected
    assert all(f.score is None for f in scores.features)
    with pytest.raises(ValueError, match="counts for"):
        score(
            REFERENCE,
            DriftCounts(rows=1, features={"x": FeatureCounts(counts=[1])}),
            DriftThresholds(),
        )
