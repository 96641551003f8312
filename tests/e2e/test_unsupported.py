"""Fields the API declares and the operator does not implement yet, applied to the examples:
each is refused with `Ready=False`, reason `Unsupported`, a message and a Warning Event that
name the field, and no child Job or Deployment, instead of being accepted and ignored."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client

from localkube.stack import Stack
from localkube.testing import wait_for
from tests.e2e.mlhelpers import (
    condition,
    events_for,
    jobs_with_label,
    kubectl_apply,
    load_example,
    wait_phase,
)

pytestmark = pytest.mark.e2e

# name -> (field, change to examples/search's TrainingJob)
TRAINING_JOB_FIELDS: dict[str, tuple[str, dict[str, Any]]] = {
    "search-schedule": ("spec.schedule with spec.search", {"schedule": "0 3 * * *"}),
    "search-new-data": ("spec.retrain.onNewData with spec.search",
                        {"retrain": {"onNewData": True}}),
}


def assert_refused(k8s: client.ApiClient, plural: str, namespace: str, name: str,
                   field: str) -> None:
    refused = wait_phase(k8s, plural, namespace, name, ("Failed",), timeout=90)
    ready = condition(refused, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "Unsupported"), ready
    assert ready["message"].startswith(f"{field}: not supported yet"), ready["message"]
    # The Event is posted right after the status is written.
    wait_for(f"a Warning Event naming {field}", lambda: any(
        event.type == "Warning" and event.reason == "Unsupported" and field in event.message
        for event in events_for(k8s, namespace, name)), timeout=10)


def test_each_unimplemented_training_job_field_is_refused_without_a_training_job(
    mlstack: Stack, k8s: client.ApiClient, ml_namespace: str
) -> None:
    for name, (_, changes) in TRAINING_JOB_FIELDS.items():
        training = load_example("search/trainingjob.yaml", {
            "metadata": {"name": name}, "spec": changes})
        code, output = kubectl_apply(mlstack, ml_namespace, training)
        assert code == 0, output
    for name, (field, _) in TRAINING_JOB_FIELDS.items():
        assert_refused(k8s, "trainingjobs", ml_namespace, name, field)
    assert not jobs_with_label(k8s, ml_namespace, "mlcycle.dev/training-job")

