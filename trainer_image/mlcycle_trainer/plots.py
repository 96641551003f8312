"""PNG plots of a profile, drawn with matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

import io
import math
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from mlcycle_contract.api.learning import Task
from mlcycle_trainer.profile import Profile

MAX_HISTOGRAMS = 24
MAX_BARS = 20
DPI = 80


def draw_plots(frame: pd.DataFrame, profile: Profile) -> dict[str, bytes]:
    """File name -> PNG bytes, for every plot that the data allows."""
    plots = {
        "target.png": _target_plot(frame[profile.target], profile),
        "histograms.png": _histograms(frame, profile),
    }
    if profile.feature_importance:
        plots["feature_importance.png"] = _importance_plot(profile.feature_importance)
    if len(profile.correlation_columns) >= 2:
        plots["correlations.png"] = _heatmap(profile.correlation_columns, profile.correlations)
    return plots


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png", dpi=DPI)
    plt.close(figure)
    return buffer.getvalue()


def _draw_column(axes: Any, column: pd.Series) -> None:
    values = column.dropna()
    if str(column.dtype) in ("int64", "float64") and len(values):
        axes.hist(values.astype("float64"), bins=30, color="#4878a8")
    else:
        counts = values.astype("string").value_counts().head(10)
        axes.barh(
            [_short(str(v)) for v in counts.index][::-1], counts.to_numpy()[::-1], color="#4878a8"
        )
        axes.tick_params(axis="y", labelsize=7)
    axes.set_title(_short(str(column.name), 28), fontsize=9)
    axes.tick_params(axis="x", labelsize=7)


def _short(text: str, limit: int = 20) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _target_plot(target: pd.Series, profile: Profile) -> bytes:
    figure, axes = plt.subplots(figsize=(6, 4))
    if profile.task == Task.CLASSIFICATION:
        classes = profile.target_distribution["classes"][:MAX_BARS]
        axes.bar(
            [_short(c["value"]) for c in classes], [c["count"] for c in classes], color="#4878a8"
        )
        axes.set_ylabel("rows")
        axes.tick_params(axis="x", rotation=45)
    else:
        axes.hist(target.dropna().astype("float64"), bins=40, color="#4878a8")
        axes.set_ylabel("rows")
    axes.set_title(f"target: {profile.target} ({profile.task})")
    return _png(figure)


def _histograms(frame: pd.DataFrame, profile: Profile) -> bytes:
    """A grid of the target and the most informative features."""
    names = [profile.target, *[name for name, _ in profile.feature_importance]][:MAX_HISTOGRAMS]
    columns = min(4, len(names))
    rows = math.ceil(len(names) / columns)
    figure, grid = plt.subplots(rows, columns, figsize=(3 * columns, 2.4 * rows), squeeze=False)
    for axes, name in zip(grid.flat, names, strict=False):
        _draw_column(axes, frame[name])
    for axes in list(grid.flat)[len(names) :]:
        axes.set_visible(False)
    return _png(figure)


def _importance_plot(importance: list[tuple[str, float]]) -> bytes:
    top = importance[:MAX_BARS][::-1]
    figure, axes = plt.subplots(figsize=(6, 0.3 * len(top) + 1.2))
    axes.barh([_short(name, 28) for name, _ in top], [value for _, value in top], color="#4878a8")
    axes.set_xlabel("mutual information with the target")
    axes.set_title("feature importance")
    return _png(figure)


def _heatmap(names: list[str], matrix: list[list[float | None]]) -> bytes:
    size = max(4.0, 0.35 * len(names) + 2)
    figure, axes = plt.subplots(figsize=(size + 1, size))
    values = [[math.nan if v is None else v for v in row] for row in matrix]
    image = axes.imshow(values, cmap="coolwarm", vmin=-1, vmax=1)
    labels = [_short(name) for name in names]
    axes.set_xticks(range(len(names)), labels, rotation=90, fontsize=7)
    axes.set_yticks(range(len(names)), labels, fontsize=7)
    axes.set_title("Pearson correlation")
    figure.colorbar(image, ax=axes, shrink=0.8)
    return _png(figure)
