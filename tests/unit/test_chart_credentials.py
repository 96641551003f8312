"""The chart's admin credentials reach only what needs admin power: MinIO's root user and
MLflow's admin stay in the release namespace, read by MinIO, MLflow, the bucket Job and the
operator; MLflow runs its basic-auth app with no permission by default; no secret in argv."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.chart_rendering import (
    CHART,
    SCENARIOS,
    of_kind,
    pod_templates,
    render,
    run_helm,
)
from tests.unit.test_chart_render import kubelet_argv

ADMIN_SECRETS = {"rel-mlcycle-s3": {"rel-mlcycle-minio", "rel-mlcycle-mlflow",
                                    "rel-mlcycle-minio-buckets", "rel-mlcycle-operator"},
                 "rel-mlcycle-mlflow-admin": {"rel-mlcycle-mlflow", "rel-mlcycle-operator"}}


def readers(documents: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Secret name -> the workloads whose containers read it."""
    found: dict[str, set[str]] = {}
    for workload, pod in pod_templates(documents):
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            for variable in container.get("env", []):
                reference = variable.get("valueFrom", {}).get("secretKeyRef")
                if reference:
                    found.setdefault(reference["name"], set()).add(workload)
        for volume in pod.get("volumes", []):
            if "secret" in volume:
                found.setdefault(volume["secret"]["secretName"], set()).add(workload)
    return found


def test_only_minio_mlflow_the_bucket_job_and_the_operator_read_the_admin_secrets() -> None:
    assert readers(render()) == ADMIN_SECRETS


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda path: path.stem)
def test_no_secret_reaches_a_command_line_in_any_scenario(scenario: Any) -> None:
    secret = "s3cr3t-value-f00d"
    for _, pod in pod_templates(render("--values", str(scenario))):
        for container in pod["containers"]:
            assert not [arg for arg in kubelet_argv(container, secret) if secret in arg]


def test_mlflow_runs_basic_auth_with_no_permission_by_default() -> None:
    documents = render()
    mlflow = next(d for d in of_kind(documents, "Deployment")
                  if d["metadata"]["name"] == "rel-mlcycle-mlflow")
    container = mlflow["spec"]["template"]["spec"]["containers"][0]
    assert "--app-name=basic-auth" in container["args"]
    config = next(d for d in of_kind(documents, "ConfigMap")
                  if d["metadata"]["name"] == "rel-mlcycle-mlflow-auth")["data"]["basic_auth.ini"]
    assert "default_permission = NO_PERMISSIONS" in config.splitlines()
    assert "database_uri = sqlite:////mlflow/data/auth.db" in config.splitlines()


def test_an_external_mlflow_needs_its_admin_secret() -> None:
    completed = run_helm("template", "rel", str(CHART), "--set", "mlflow.enabled=false",
                         "--set", "mlflow.trackingURI=http://mlflow:5000")
    assert completed.returncode != 0
    assert "mlflow.admin.existingSecret is required" in completed.stderr
