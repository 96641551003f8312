"""From a snapshot to model inputs, and the scikit-learn Pipeline that preprocesses them.

Features reach the pipeline as float64 (numbers and booleans) or object (text, missing as
NaN): the types a model server builds from JSON, so the logged signature accepts them.
The pipeline imputes, scales numbers and encodes text itself, fit on training rows only.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, OrdinalEncoder, StandardScaler

from mlcycle_contract.api.learning import Task
from mlcycle_contract.api.trainingjob import Scaling
from mlcycle_trainer.errors import TARGET_COLUMN_MISSING, TARGET_UNSUITABLE, InvalidInput, name_list

logger = logging.getLogger(__name__)

MAX_ONE_HOT_CATEGORIES = 100  # rarer categories share one column
MISSING_CATEGORY = "__missing__"


def features_and_target(
    frame: pd.DataFrame, target: str, task: Task
) -> tuple[pd.DataFrame, pd.Series]:
    """X (model input types) and y, without rows whose target is missing."""
    if target not in frame.columns:
        raise InvalidInput(
            TARGET_COLUMN_MISSING,
            f"target column {target!r} is not in the snapshot; its columns are: "
            f"{name_list([str(c) for c in frame.columns])}",
        )
    labelled = frame[frame[target].notna()].reset_index(drop=True)
    if len(labelled) < len(frame):
        logger.warning("Dropped %d rows without a target value", len(frame) - len(labelled))
    x = pd.DataFrame(
        {name: _model_input(labelled[name]) for name in labelled.columns if name != target}
    )
    return x, _target(labelled[target], target, task)


def _model_input(column: pd.Series) -> pd.Series:
    if str(column.dtype) in ("int64", "float64", "bool"):
        return column.astype("float64")
    values = column.astype(object)
    return values.where(column.notna(), np.nan)


def _target(y: pd.Series, name: str, task: Task) -> pd.Series:
    dtype = str(y.dtype)
    if task == Task.CLASSIFICATION:
        if dtype == "float64":
            if not np.all(np.mod(y.to_numpy(), 1) == 0):
                raise InvalidInput(
                    TARGET_UNSUITABLE,
                    f"target {name!r} has continuous values; train a regressor, or a classifier "
                    "on a categorical target",
                )
            y = y.astype("int64")
        elif dtype == "string":
            y = y.astype(object)
        if y.nunique() < 2:
            raise InvalidInput(TARGET_UNSUITABLE, f"target {name!r} has fewer than 2 classes")
        return y
    if dtype == "string":
        raise InvalidInput(
            TARGET_UNSUITABLE, f"target {name!r} holds text; train a classifier, not a regressor"
        )
    return y.astype("float64")


def build_pipeline(
    estimator: BaseEstimator, x: pd.DataFrame, scaling: Scaling, one_hot_encode: bool
) -> Pipeline:
    """preprocess (impute + scale numbers, impute + encode text) -> model."""
    numeric = [str(name) for name in x.columns if x[name].dtype == np.float64]
    text = [str(name) for name in x.columns if x[name].dtype != np.float64]
    numeric_steps: list[tuple[str, object]] = [("impute", SimpleImputer(strategy="median"))]
    if scaling == Scaling.STANDARD:
        numeric_steps.append(("scale", StandardScaler()))
    elif scaling == Scaling.MINMAX:
        numeric_steps.append(("scale", MinMaxScaler()))
    encoder = (
        OneHotEncoder(
            handle_unknown="infrequent_if_exist",
            max_categories=MAX_ONE_HOT_CATEGORIES,
            sparse_output=False,
        )
        if one_hot_encode
        else OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
    )
    text_steps = [
        ("impute", SimpleImputer(strategy="constant", fill_value=MISSING_CATEGORY)),
        ("encode", encoder),
    ]
    transformers = []
    if numeric:
        transformers.append(("numeric", Pipeline(numeric_steps), numeric))
    if text:
        transformers.append(("text", Pipeline(text_steps), text))
    preprocess = ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)
    return Pipeline([("preprocess", preprocess), ("model", estimator)])
