"""The drift reference the trainer logs: one entry per model input, from the training split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlcycle_contract.api.learning import Task
from mlcycle_contract.drift import DriftReference, FeatureKind
from mlcycle_trainer.drift_reference import build_reference
from mlcycle_trainer.preprocessing import features_and_target


def test_reference_follows_the_model_inputs() -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "size": rng.normal(5, 2, size=400),
            "count": rng.integers(0, 3, size=400),
            "flag": rng.integers(0, 2, size=400).astype(bool),
            "colour": pd.Series(rng.choice(["red", "blue"], size=400), dtype="string"),
            "label": rng.integers(0, 2, size=400),
        }
    )
    frame.loc[:39, "size"] = np.nan
    frame.loc[:19, "colour"] = pd.NA
    x, _ = features_and_target(frame, "label", Task.CLASSIFICATION)

    reference = build_reference(x)

    assert reference.rows == 400
    assert [f.name for f in reference.features] == ["size", "count", "flag", "colour"]
    size, count, flag, colour = reference.features
    assert size.kind is FeatureKind.NUMERIC and size.slots == 10
    assert size.missing_rate == pytest.approx(0.1)
    assert count.edges == [0.0, 1.0, 2.0]  # a discrete feature keeps its values apart
    assert flag.kind is FeatureKind.NUMERIC and flag.edges == [0.0, 1.0]
    assert colour.kind is FeatureKind.CATEGORICAL
    assert sorted(colour.categories) == ["blue", "red"]
    assert colour.missing_rate == pytest.approx(0.05)
    assert DriftReference.model_validate(reference.to_wire()) == reference
