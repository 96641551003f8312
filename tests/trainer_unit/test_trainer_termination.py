"""The termination message always fits the kubelet's 4096 bytes and never holds a secret."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlcycle_contract.environment import TERMINATION_MESSAGE_LIMIT
from mlcycle_contract.results import IngestionResult, TrainingResult
from mlcycle_trainer.termination import encode, failure, fit, write


def ingest_message(columns: int, warnings: int) -> dict[str, Any]:
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
    encoded = fit(IngestionResult.model_validate(message))
    assert json.loads(encoded) == message
    assert b" " not in encoded.replace(b"12.5% missing", b"")[:40]


def test_a_wide_dataset_is_cut_to_fit_and_says_so() -> None:
    message = ingest_message(2000, 50)
    encoded = fit(IngestionResult.model_validate(message))
    assert len(encoded) <= TERMINATION_MESSAGE_LIMIT
    decoded = json.loads(encoded)
    assert decoded["truncated"] is True
    assert decoded["columns"] == 2000 and decoded["version"] == "0123456789abcdef"
    assert 0 < len(decoded["schema"]) < 2000
    assert decoded["profile"]["topFeatures"] == message["profile"]["topFeatures"]


def test_many_metrics_keep_the_headline_ones() -> None:
    metrics = {f"cv_metric_{i}_mean": 0.123456 for i in range(300)} | {"accuracy": 0.9}
    result = TrainingResult.model_validate(
        {
            "metrics": metrics,
            "fitSeconds": 1.0,
            "model": {"name": "iris", "version": 1, "uri": "models:/iris/1"},
            "mlflow": {"runId": "0123", "experimentId": "1"},
            "runtime": {"python": "3.11.7", "sklearn": "1.9.1", "numpy": "2.4.6"},
            "gates": {"passed": False, "failed": ["accuracy >= 0.99 (got 0.9)"] * 100},
            "datasetVersion": "0123456789abcdef",
        }
    )
    encoded = fit(result)
    assert len(encoded) <= TERMINATION_MESSAGE_LIMIT
    decoded = json.loads(encoded)
    assert decoded["metrics"] == {"accuracy": 0.9}
    assert decoded["gates"] == {"passed": False, "failed": ["accuracy >= 0.99 (got 0.9)"]}
    assert TrainingResult.model_validate(decoded).truncated is True


def test_timings_go_first_when_a_result_is_too_long() -> None:
    result = TrainingResult.model_validate(
        {
            "metrics": {f"cv_metric_{i}_mean": 0.123456 for i in range(60)} | {"accuracy": 0.9},
            "fitSeconds": 1.0,
            "model": {"name": "iris", "version": 1, "uri": "models:/iris/1"},
            "mlflow": {"runId": "0123", "experimentId": "1"},
            "runtime": {"python": "3.11.7", "sklearn": "1.9.1", "numpy": "2.4.6"},
            "gates": {"passed": True},
            "datasetVersion": "0123456789abcdef",
            "timings": {"processStarted": 1.5e9,
                        "phases": {f"a phase with a long name {i}": 0.5 for i in range(60)}},
        }
    )
    assert len(encode(result)) > TERMINATION_MESSAGE_LIMIT
    decoded = json.loads(fit(result))
    assert "timings" not in decoded
    assert len(decoded["metrics"]) == 61 and decoded["truncated"] is True


def test_a_long_error_message_is_cut() -> None:
    encoded = fit(failure("TargetColumnMissing", "x" * 100_000, "spec.target"))
    decoded = json.loads(encoded)
    assert len(encoded) <= TERMINATION_MESSAGE_LIMIT
    assert decoded["error"]["reason"] == "TargetColumnMissing"
    assert decoded["error"]["field"] == "spec.target"


def test_secrets_from_the_environment_are_never_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-value-123")
    path = tmp_path / "termination-log"
    write(
        str(path),
        failure("SourceUnreadable", "GET https://user:pw@host/x?k=s3cr3t-value-123"),
    )
    text = path.read_text()
    assert "s3cr3t-value-123" not in text and "user:pw" not in text
    assert json.loads(text)["error"]["message"] == "GET https://***@host/x?k=***"


def test_an_unwritable_path_is_only_logged(tmp_path: Path) -> None:
    assert write(str(tmp_path / "missing-dir" / "log"), failure("Terminated", "stopped")) > 0
