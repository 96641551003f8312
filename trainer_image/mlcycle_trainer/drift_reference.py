"""The drift reference of a model: its training split's distribution, feature by feature.

Numbers (float64 model inputs) get quantile bins, everything else category frequencies
(`mlcycle_contract.drift`). It is logged to the training run next to the model and named
by a tag on the registered version, so a model server with drift monitoring on compares
its live inputs with the data this version was trained on.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlcycle_contract.drift import (
    DriftReference,
    FeatureReference,
    categorical_reference,
    numeric_reference,
)


def build_reference(x_train: pd.DataFrame) -> DriftReference:
    """One entry per column of the model input, in its order."""
    features: list[FeatureReference] = []
    for name in x_train.columns:
        column = x_train[name]
        if column.dtype == np.float64:
            features.append(numeric_reference(str(name), column.to_numpy()))
        else:
            features.append(categorical_reference(str(name), column.tolist()))
    return DriftReference(rows=len(x_train), features=features)
