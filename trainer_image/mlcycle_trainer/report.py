"""The HTML profile report: one self-describing page beside its PNG plots."""

from __future__ import annotations

from html import escape
from typing import Any

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 1200px; }
table { border-collapse: collapse; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.warning { color: #8a4b00; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
"""

_NUMERIC_FIELDS = ("mean", "std", "min", "median", "max")


def render_report(
    profile_json: dict[str, Any], title: str, facts: dict[str, str], plots: list[str]
) -> str:
    """The report page; `plots` are file names next to it, `facts` a few header lines."""
    sections = [
        f"<h1>{escape(title)}</h1>",
        _facts_table(facts),
        _warnings(profile_json.get("warnings", [])),
        _image_section("Target", "target.png", plots),
        _image_section("Feature importance", "feature_importance.png", plots),
        _importance_table(profile_json.get("featureImportance", [])),
        "<h2>Columns</h2>",
        _columns_table(profile_json.get("columns", [])),
        _image_section("Distributions", "histograms.png", plots),
        _image_section("Correlations", "correlations.png", plots),
    ]
    body = "\n".join(section for section in sections if section)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def _facts_table(facts: dict[str, str]) -> str:
    rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in facts.items())
    return f"<table>{rows}</table>"


def _warnings(warnings: list[str]) -> str:
    if not warnings:
        return "<h2>Warnings</h2><p>None.</p>"
    items = "".join(f'<li class="warning">{escape(w)}</li>' for w in warnings)
    return f"<h2>Warnings</h2><ul>{items}</ul>"


def _image_section(title: str, file_name: str, plots: list[str]) -> str:
    if file_name not in plots:
        return ""
    return f'<h2>{escape(title)}</h2><img src="{escape(file_name)}" alt="{escape(title)}">'


def _importance_table(importance: list[dict[str, Any]]) -> str:
    rows = "".join(
        f"<tr><td>{escape(str(item['name']))}</td><td>{item['importance']:.4f}</td></tr>"
        for item in importance[:30]
    )
    return f"<table><tr><th>feature</th><th>mutual information</th></tr>{rows}</table>"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return escape(str(value))


def _columns_table(columns: list[dict[str, Any]]) -> str:
    header = "".join(
        f"<th>{name}</th>"
        for name in (
            "column",
            "role",
            "dtype",
            "missing",
            "distinct",
            *_NUMERIC_FIELDS,
            "top values",
        )
    )
    rows = []
    for column in columns:
        top = ", ".join(f"{t['value']} ({t['count']})" for t in column.get("top", []))
        cells = [
            column["name"],
            column["role"],
            column["dtype"],
            f"{column['missing']} ({column['missingFraction']:.1%})",
            column["distinct"],
            *(column.get(field) for field in _NUMERIC_FIELDS),
            top,
        ]
        rows.append("<tr>" + "".join(f"<td>{_cell(cell)}</td>" for cell in cells) + "</tr>")
    return f"<table><tr>{header}</tr>{''.join(rows)}</table>"
