"""The data profile: statistics, importance, quality warnings, plots and the report."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlcycle_trainer.frames import normalise
from mlcycle_trainer.plots import draw_plots
from mlcycle_trainer.profile import build_profile, infer_task, summary
from mlcycle_trainer.report import render_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def messy_frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = 400
    signal = rng.normal(size=rows)
    frame = pd.DataFrame(
        {
            "signal": signal,
            "signal_copy": signal * 2 + 0.01 * rng.normal(size=rows),
            "noise": rng.normal(size=rows),
            "constant": 1,
            "customer_id": [f"id-{i}" for i in range(rows)],
            "sometimes": np.where(rng.random(rows) < 0.3, np.nan, rng.normal(size=rows)),
            "label": np.where(signal > 1.6, "rare", "common"),
        }
    )
    return normalise(frame, "label", None)


def test_tasks_follow_the_target() -> None:
    assert infer_task(pd.Series(["a", "b"], dtype="string")) == "classification"
    assert infer_task(pd.Series([0, 1, 2] * 5)) == "classification"
    assert infer_task(pd.Series(range(100))) == "regression"
    assert infer_task(pd.Series([0.5, 1.5])) == "regression"


def test_the_informative_feature_ranks_first() -> None:
    profile = build_profile(messy_frame(), "label")
    ranked = [name for name, _ in profile.feature_importance]
    assert ranked[0] in ("signal", "signal_copy")
    assert ranked.index("noise") > 1
    assert profile.task == "classification"


def test_quality_warnings_cover_the_usual_problems() -> None:
    warnings = "\n".join(build_profile(messy_frame(), "label").warnings)
    assert "class imbalance in 'label'" in warnings
    assert "column 'sometimes' has" in warnings and "missing values" in warnings
    assert "column 'constant' is constant" in warnings
    assert "column 'customer_id' has high cardinality" in warnings
    assert "'signal' and 'signal_copy' are highly correlated" in warnings


def test_column_statistics() -> None:
    columns = {c["name"]: c for c in build_profile(messy_frame(), "label").columns}
    assert columns["constant"]["min"] == columns["constant"]["max"] == 1
    assert columns["sometimes"]["missing"] > 0
    assert columns["label"]["role"] == "target"
    assert columns["customer_id"]["top"][0]["count"] == 1


def test_summary_has_five_top_features_and_a_few_warnings() -> None:
    profile_json = build_profile(messy_frame(), "label").as_json()
    headline = summary(profile_json, "s3://b/report.html").to_wire()
    assert len(headline["topFeatures"]) == 5
    assert set(headline["topFeatures"][0]) == {"name", "importance"}
    assert 1 <= len(headline["warnings"]) <= 5
    assert headline["reportURI"] == "s3://b/report.html"


def test_regression_profile_and_plots() -> None:
    frame = normalise(pd.DataFrame({"x": np.arange(50.0), "t": np.arange(50.0) * 3}), "t", None)
    profile = build_profile(frame, "t")
    assert profile.task == "regression"
    assert set(profile.target_distribution) == {"mean", "std", "min", "max"}
    plots = draw_plots(frame, profile)
    assert set(plots) == {
        "target.png",
        "histograms.png",
        "feature_importance.png",
        "correlations.png",
    }
    assert all(png.startswith(PNG_MAGIC) for png in plots.values())


def test_report_escapes_what_the_data_says() -> None:
    frame = normalise(pd.DataFrame({"<script>": ["<b>x</b>"] * 20, "y": [0, 1] * 10}), "y", None)
    profile = build_profile(frame, "y")
    html = render_report(profile.as_json(), "Dataset <x>", {"Source": "<img>"}, ["target.png"])
    assert "<script>" not in html and "<b>x</b>" not in html and "<img>" not in html
    assert "&lt;script&gt;" in html
    assert '<img src="target.png"' in html
