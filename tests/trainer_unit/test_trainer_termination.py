"""The termination message always fits the kubelet's 4096 bytes and never holds a secret."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mlcycle_trainer.contract import TERMINATION_MESSAGE_LIMIT
from mlcycle_trainer.termination import error_message, fit, write


def ingest_message(columns: int, warnings: int) -> dict[str, object]:
    return {
        "version": "0123456789abcdef",
        "snapshotURI": "s3://mlcycle-data/datasets/ns/name/0123456789abcdef/data.parquet",
        "rows": 10,
        "columns": columns,
        "schema": [
            {"name": f"feature_with_a_long_name_{i}", "dtype": "float64"} for i in range(columns)
        ],
        "profile": {
            "topFeatures": [{"name": f"f{i}", "importance": 0.5} for i in range(5)],
            "warnings": [f"column 'feature_{i}' has 12.5% missing values" for i in range(warnings)],
            "reportURI": "s3://mlcycle-data/datasets/ns/name/0123456789abcdef/profile/report.html",
        },
    }


def test_a_small_message_is_compact_json_unchanged() -> None:
    message = ingest_message(3, 1)
    encoded = fit(message)
    assert json.loads(encoded) == message
    assert b" " not in encoded.replace(b"12.5% missing", b"")[:40]


def test_a_wide_dataset_is_cut_to_fit_and_says_so() -> None:
    message = ingest_message(2000, 50)
    encoded = fit(message)
    assert len(encoded) <= TERMINATION_MESSAGE_LIMIT
    decoded = json.loads(encoded)
    assert decoded["truncated"] is True
    assert decoded["columns"] == 2000 and decoded["version"] == "0123456789abcdef"
    assert 0 < len(decoded["schema"]) < 2000
    assert decoded["profile"]["topFeatures"] == message["profile"]["topFeatures"]  # type: ignore[index]


def test_many_metrics_keep_the_headline_ones() -> None:
    metrics = {f"cv_metric_{i}_mean": 0.123456 for i in range(300)} | {"accuracy": 0.9}
    encoded = fit({"metrics": metrics, "fitSeconds": 1.0, "gates": {"passed": True, "failed": []}})
    assert len(encoded) <= TERMINATION_MESSAGE_LIMIT
    assert json.loads(encoded)["metrics"] == {"accuracy": 0.9}


def test_a_long_error_message_is_cut() -> None:
    encoded = fit(error_message("TargetColumnMissing", "x" * 100_000))
    decoded = json.loads(encoded)
    assert len(encoded) <= TERMINATION_MESSAGE_LIMIT
    assert decoded["error"]["reason"] == "TargetColumnMissing"


def test_secrets_from_the_environment_are_never_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-value-123")
    path = tmp_path / "termination-log"
    write(
        str(path),
        error_message("SourceUnreadable", "GET https://user:pw@host/x?k=s3cr3t-value-123"),
    )
    text = path.read_text()
    assert "s3cr3t-value-123" not in text and "user:pw" not in text
    assert json.loads(text)["error"]["message"] == "GET https://***@host/x?k=***"


def test_an_unwritable_path_is_only_logged(tmp_path: Path) -> None:
    assert write(str(tmp_path / "missing-dir" / "log"), {"version": "v"}) > 0
