"""spec.concurrencyPolicy: Replace on the cluster: a manual request while a run trains deletes
that run's Job and its Pods, records the run as Replaced, posts a RunReplaced Event naming
both runs, and the new run trains, registers and succeeds alone.

The run is made slow enough to be caught training (1,500 trees, whose 200 timed one-row
predictions take most of its half minute) and is replaced once its Pod runs.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from localkube.stack import Stack
from localkube.testing import wait_for
from mlcycle_contract import constants
from tests.e2e.mlhelpers import (
    condition,
    events_for,
    kubectl_apply,
    load_example,
    read,
    wait_phase,
)

pytestmark = pytest.mark.e2e


def job_exists(k8s: client.ApiClient, namespace: str, name: str) -> bool:
    try:
        client.BatchV1Api(k8s).read_namespaced_job(name, namespace)
    except ApiException as error:
        if error.status == 404:
            return False
        raise
    return True


def job_pods(k8s: client.ApiClient, namespace: str, job_name: str) -> list[Any]:
    return list(client.CoreV1Api(k8s).list_namespaced_pod(
        namespace, label_selector=f"job-name={job_name}").items)


def test_a_manual_request_replaces_the_running_run(
    mlstack: Stack, k8s: client.ApiClient, ml_namespace: str
) -> None:
    code, output = kubectl_apply(mlstack, ml_namespace, load_example("iris/dataset.yaml"))
    assert code == 0, output
    replace_a_running_run(mlstack, k8s, ml_namespace, "iris-replace")


def replace_a_running_run(mlstack: Stack, k8s: client.ApiClient, namespace: str,
                          name: str) -> None:
    """Train `name` under Replace on the Dataset iris, request a run while run 1 trains, and
    check the replacement: also run by tests/e2e/test_chart.py, where the chart's operator
    deletes the Job with its own ServiceAccount."""
    model_name = f"{name}-{namespace}"
    training = load_example("iris/trainingjob.yaml", {
        "metadata": {"name": name},
        "spec": {"concurrencyPolicy": "Replace",
                 "hyperparameters": {"n_estimators": 1500},
                 "validation": {"folds": 2},
                 "registry": {"modelName": model_name}}})
    code, output = kubectl_apply(mlstack, namespace, training)
    assert code == 0, output

    def first_run_training() -> str | None:
        runs = (read(k8s, "trainingjobs", namespace, name).get("status") or {}).get(
            "runs") or []
        if not runs or runs[0]["phase"] != "Running":
            return None
        job_name: str = runs[0]["jobName"]
        running = [p for p in job_pods(k8s, namespace, job_name) if p.status.phase == "Running"]
        return job_name if running else None

    first_job = wait_for("run 1's Pod training", first_run_training, timeout=240)
    requested = datetime.datetime.now(datetime.UTC).isoformat()
    mlstack.kubectl("annotate", "trainingjob", name, "-n", namespace,
                    f"{constants.ANNOTATION_REQUESTED_AT}={requested}")

    wait_for("run 1's Job deleted", lambda: not job_exists(k8s, namespace, first_job),
             timeout=30)
    done = wait_phase(k8s, "trainingjobs", namespace, name, ("Succeeded", "Failed"),
                      timeout=240)
    status = done["status"]
    assert status["phase"] == "Succeeded", condition(done, "Ready")
    second, first = status["runs"]
    assert (first["number"], first["trigger"], first["phase"], first["jobName"]) == (
        1, "Created", "Replaced", first_job)
    assert first["completionTime"] and "modelVersion" not in first
    assert (second["number"], second["trigger"], second["phase"]) == (2, "Manual", "Succeeded")
    assert second["request"] == requested and second["jobName"] == status["jobName"] != first_job
    # Only the new run registered: the replaced one was stopped before it got that far.
    assert status["model"]["version"] == second["modelVersion"] == 1
    # Background propagation: the replaced Job's Pods went with it.
    wait_for("run 1's Pods gone", lambda: not job_pods(k8s, namespace, first_job), timeout=60)
    [event] = [e for e in events_for(k8s, namespace, name) if e.reason == "RunReplaced"]
    assert event.message.startswith(f"run 1 (Job {first_job}) replaced by run 2 (Manual: ")
