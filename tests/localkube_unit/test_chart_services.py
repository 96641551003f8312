"""How the stack chooses and describes its MinIO, MLflow and operator, without a cluster (the
e2e test tests/e2e/test_chart.py::test_the_stack_s_minio_and_mlflow_are_the_chart_s_pods runs
them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from localkube import chart_services, services, stack
from localkube.paths import LocalPaths
from localkube.services import ServicesState


def test_the_chart_is_the_default_and_process_the_alternative(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(services.MODE_VARIABLE, raising=False)
    assert services.from_chart()
    monkeypatch.setenv(services.MODE_VARIABLE, "process")
    assert not services.from_chart()


def test_an_unknown_mode_is_refused_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(services.MODE_VARIABLE, "pods")
    with pytest.raises(SystemExit, match="LOCALKUBE_SERVICES='pods'"):
        services.from_chart()


def test_a_backend_uri_is_refused_rather_than_ignored_in_chart_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(services.BACKEND_URI_VARIABLE, "postgresql://mlflow@db/mlflow")
    nothing: Any = None  # refused before the cluster is touched
    with pytest.raises(SystemExit, match=r"MLCYCLE_MLFLOW_BACKEND_URI.*LOCALKUBE_SERVICES=process"):
        chart_services.up(LocalPaths(tmp_path), nothing)


def test_health_urls_are_the_same_in_both_modes() -> None:
    state = ServicesState(s3_endpoint="http://10.96.0.20:9000",
                          mlflow_url="http://10.96.0.21:5000", pids={}, release_namespace="mlcycle")
    assert services.health_url(state, "minio") == "http://10.96.0.20:9000/minio/health/live"
    assert services.health_url(state, "mlflow") == "http://10.96.0.21:5000/health"


def test_a_state_recorded_by_process_mode_reads_as_process_mode() -> None:
    recorded = '{"s3_endpoint": "http://10.0.0.1:9000", "mlflow_url": "http://10.0.0.1:5000", ' \
               '"pids": {"minio": 1, "mlflow": 2}}'
    assert ServicesState.model_validate_json(recorded).release_namespace is None


def test_a_process_state_whose_processes_are_gone_is_not_running(tmp_path: Path) -> None:
    gone = ServicesState(s3_endpoint="", mlflow_url="", pids={"minio": 2**22 + 1})
    assert not services.is_running(LocalPaths(tmp_path), gone)
    assert not services.is_running(LocalPaths(tmp_path), None)


def test_the_operator_follows_the_services_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(services.MODE_VARIABLE, raising=False)
    monkeypatch.delenv(stack.OPERATOR_MODE_VARIABLE, raising=False)
    assert stack.operator_from_chart()
    monkeypatch.setenv(stack.OPERATOR_MODE_VARIABLE, "process")  # the fast path for edits
    assert not stack.operator_from_chart()
    monkeypatch.delenv(stack.OPERATOR_MODE_VARIABLE)
    monkeypatch.setenv(services.MODE_VARIABLE, "process")
    assert not stack.operator_from_chart()


def test_the_chart_s_operator_without_the_chart_s_services_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(services.MODE_VARIABLE, "process")
    monkeypatch.setenv(stack.OPERATOR_MODE_VARIABLE, "chart")
    with pytest.raises(SystemExit, match=r"LOCALKUBE_OPERATOR=chart needs.*LOCALKUBE_SERVICES"):
        stack.operator_from_chart()
