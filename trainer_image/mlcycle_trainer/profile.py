"""The data profile of a normalised frame: statistics, importance, correlations, warnings.

Pure computation; `plots` draws it and `report` renders it as HTML.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlcycle_contract.api.dataset import FeatureImportance, ProfileSummary
from mlcycle_contract.api.learning import Task

MAX_CLASSES_FOR_INTEGER_TARGET = 20
IMPORTANCE_SAMPLE_ROWS = 20_000
MAX_CORRELATION_COLUMNS = 30
HIGH_CORRELATION = 0.95
HIGH_CARDINALITY = 50
IMBALANCE_RATIO = 0.2
FEW_ROWS = 100
MAX_WARNINGS = 50
SUMMARY_TOP_FEATURES = 5
SUMMARY_WARNINGS = 5


@dataclass
class Profile:
    """Everything the report shows; `as_json()` is profile.json."""

    rows: int
    target: str
    task: Task
    columns: list[dict[str, Any]]
    target_distribution: dict[str, Any]
    feature_importance: list[tuple[str, float]]
    correlation_columns: list[str]
    correlations: list[list[float | None]]
    duplicate_rows: int
    warnings: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "target": self.target,
            "task": self.task,
            "columns": self.columns,
            "targetDistribution": self.target_distribution,
            "featureImportance": [
                {"name": name, "importance": value} for name, value in self.feature_importance
            ],
            "importanceMethod": "mutual information",
            "correlations": {"columns": self.correlation_columns, "pearson": self.correlations},
            "duplicateRows": self.duplicate_rows,
            "warnings": self.warnings,
        }


def summary(profile_json: dict[str, Any], report_uri: str) -> ProfileSummary:
    """The headline for the Dataset's status: top features, a few warnings, the report."""
    return ProfileSummary(
        top_features=[
            FeatureImportance.model_validate(feature)
            for feature in profile_json.get("featureImportance", [])[:SUMMARY_TOP_FEATURES]
        ],
        warnings=profile_json.get("warnings", [])[:SUMMARY_WARNINGS],
        report_uri=report_uri,
    )


def infer_task(target: pd.Series) -> Task:
    """classification for text, bool and few-valued integer targets; else regression."""
    dtype = str(target.dtype)
    if dtype in ("string", "bool"):
        return Task.CLASSIFICATION
    if dtype == "int64" and target.nunique() <= MAX_CLASSES_FOR_INTEGER_TARGET:
        return Task.CLASSIFICATION
    return Task.REGRESSION


def build_profile(frame: pd.DataFrame, target: str) -> Profile:
    task = infer_task(frame[target])
    importance = feature_importance(frame, target, task)
    ranked = [name for name, _ in importance]
    numeric = [name for name in [target, *ranked] if _is_numeric(frame[name])]
    correlation_columns = numeric[:MAX_CORRELATION_COLUMNS]
    matrix = frame[correlation_columns].astype("float64").corr().to_numpy()
    profile = Profile(
        rows=len(frame),
        target=target,
        task=task,
        columns=[column_statistics(frame[name], name == target) for name in frame.columns],
        target_distribution=target_distribution(frame[target], task),
        feature_importance=importance,
        correlation_columns=correlation_columns,
        correlations=[[_number(value) for value in row] for row in matrix],
        duplicate_rows=int(frame.duplicated().sum()),
    )
    profile.warnings = quality_warnings(frame, profile)[:MAX_WARNINGS]
    return profile


def _is_numeric(column: pd.Series) -> bool:
    return str(column.dtype) in ("int64", "float64", "bool")


def _number(value: Any) -> float | None:
    number = float(value)
    return None if math.isnan(number) or math.isinf(number) else float(f"{number:.6g}")


def column_statistics(column: pd.Series, is_target: bool) -> dict[str, Any]:
    missing = int(column.isna().sum())
    stats: dict[str, Any] = {
        "name": str(column.name),
        "dtype": str(column.dtype),
        "role": "target" if is_target else "feature",
        "count": int(len(column) - missing),
        "missing": missing,
        "missingFraction": _number(missing / len(column)) if len(column) else 0.0,
        "distinct": int(column.nunique()),
    }
    if _is_numeric(column) and missing < len(column):
        values = column.astype("float64").dropna()
        quantiles = values.quantile([0.25, 0.5, 0.75]).to_numpy()
        stats.update(
            mean=_number(values.mean()),
            std=_number(values.std()) if len(values) > 1 else None,
            min=_number(values.min()),
            p25=_number(quantiles[0]),
            median=_number(quantiles[1]),
            p75=_number(quantiles[2]),
            max=_number(values.max()),
            zeros=int((values == 0).sum()),
        )
    else:
        counts = column.value_counts().head(5)
        stats["top"] = [{"value": str(v), "count": int(c)} for v, c in counts.items()]
    return stats


def target_distribution(target: pd.Series, task: Task) -> dict[str, Any]:
    if task == Task.CLASSIFICATION:
        counts = target.value_counts()
        total = int(counts.sum())
        return {
            "classes": [
                {"value": str(v), "count": int(c), "fraction": _number(c / total)}
                for v, c in counts.head(50).items()
            ],
            "classCount": len(counts),
        }
    values = target.astype("float64").dropna()
    return {
        "mean": _number(values.mean()),
        "std": _number(values.std()),
        "min": _number(values.min()),
        "max": _number(values.max()),
    }


def feature_importance(frame: pd.DataFrame, target: str, task: Task) -> list[tuple[str, float]]:
    """Mutual information of each feature with the target, best first."""
    from sklearn.feature_selection import mutual_info_classif, mutual_info_regression

    usable = frame[frame[target].notna()]
    if len(usable) > IMPORTANCE_SAMPLE_ROWS:
        usable = usable.sample(IMPORTANCE_SAMPLE_ROWS, random_state=0)
    features = [name for name in usable.columns if name != target]
    if len(usable) < 4 or not features:
        return [(name, 0.0) for name in features]
    encoded, discrete = [], []
    for name in features:
        column = usable[name]
        if _is_numeric(column):
            values = column.astype("float64")
            encoded.append(values.fillna(values.median() if values.notna().any() else 0.0))
            discrete.append(str(column.dtype) == "bool")
        else:
            encoded.append(
                pd.Series(pd.factorize(column, use_na_sentinel=False)[0], index=usable.index)
            )
            discrete.append(True)
    matrix = np.column_stack([series.to_numpy(dtype="float64") for series in encoded])
    y = usable[target]
    if task == Task.CLASSIFICATION:
        scores = mutual_info_classif(
            matrix, pd.factorize(y)[0], discrete_features=np.array(discrete), random_state=0
        )
    else:
        scores = mutual_info_regression(
            matrix, y.astype("float64"), discrete_features=np.array(discrete), random_state=0
        )
    ranked = sorted(zip(features, scores, strict=True), key=lambda item: (-item[1], item[0]))
    return [(name, _number(score) or 0.0) for name, score in ranked]


def quality_warnings(frame: pd.DataFrame, profile: Profile) -> list[str]:
    found: list[str] = []
    target = frame[profile.target]
    classes = profile.target_distribution.get("classes", [])
    if profile.task == Task.CLASSIFICATION and len(classes) >= 2:
        largest, smallest = classes[0], classes[-1]
        if smallest["count"] / largest["count"] < IMBALANCE_RATIO:
            found.append(
                f"class imbalance in {profile.target!r}: class {smallest['value']!r} has "
                f"{smallest['fraction']:.1%} of rows, "
                f"class {largest['value']!r} {largest['fraction']:.1%}"
            )
    if target.isna().any():
        found.append(
            f"target {profile.target!r} has {int(target.isna().sum())} missing values; "
            "those rows are not used for training"
        )
    by_missing = sorted(profile.columns, key=lambda c: -c["missing"])
    for column in by_missing:
        if column["missing"] and column["role"] == "feature":
            found.append(
                f"column {column['name']!r} has {column['missingFraction']:.1%} missing values"
            )
    for column in profile.columns:
        if column["distinct"] <= 1:
            found.append(f"column {column['name']!r} is constant")
        elif (
            column["dtype"] == "string"
            and column["distinct"] > HIGH_CARDINALITY
            and column["distinct"] > 0.5 * column["count"]
        ):
            found.append(
                f"column {column['name']!r} has high cardinality ({column['distinct']} distinct "
                f"values in {column['count']} rows); is it an identifier?"
            )
    found.extend(_correlated_pairs(profile))
    if profile.duplicate_rows:
        found.append(
            f"{profile.duplicate_rows} duplicate rows ({profile.duplicate_rows / profile.rows:.1%})"
        )
    if profile.rows < FEW_ROWS:
        found.append(f"only {profile.rows} rows: metrics on held-out data will be noisy")
    return found


def _correlated_pairs(profile: Profile) -> list[str]:
    names, matrix = profile.correlation_columns, profile.correlations
    pairs = []
    for i, first in enumerate(names):
        for j in range(i + 1, len(names)):
            value = matrix[i][j]
            if (
                value is not None
                and abs(value) >= HIGH_CORRELATION
                and profile.target not in (first, names[j])
            ):
                pairs.append(
                    f"features {first!r} and {names[j]!r} are highly correlated (r={value:.2f})"
                )
    return pairs
