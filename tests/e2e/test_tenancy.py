"""Each namespace is its own tenant, tried on the local cluster with the real MinIO and MLflow.

An image override is refused unless the operator's allow-list names it: its Pod would run
with the namespace's credentials."""

from __future__ import annotations

import pytest
from kubernetes import client

from localkube.stack import Stack
from tests.e2e.mlhelpers import condition, jobs_with_label, kubectl_apply, load_example, wait_phase

pytestmark = pytest.mark.e2e

FOREIGN_IMAGE = "evil.example/steal-credentials:1"


def test_an_image_off_the_allow_list_is_refused_and_no_pod_runs(
    mlstack: Stack, k8s: client.ApiClient, ml_namespace: str
) -> None:
    for document in (load_example("iris/trainingjob.yaml", {"spec": {"image": FOREIGN_IMAGE}}),
                     load_example("iris/modeldeployment.yaml", {"spec": {"image": FOREIGN_IMAGE}})):
        code, output = kubectl_apply(mlstack, ml_namespace, document)
        assert code == 0, output
    for plural, name in (("trainingjobs", "iris-rf"), ("modeldeployments", "iris")):
        refused = wait_phase(k8s, plural, ml_namespace, name, ("Failed",), timeout=90)
        ready = condition(refused, "Ready")
        assert (ready["status"], ready["reason"]) == ("False", "ImageNotAllowed"), ready
        assert ready["message"].startswith(f"spec.image: {FOREIGN_IMAGE!r} is not on"), ready
    assert not jobs_with_label(k8s, ml_namespace, "mlcycle.dev/training-job")
    assert not client.AppsV1Api(k8s).list_namespaced_deployment(ml_namespace).items
    assert not client.CoreV1Api(k8s).list_namespaced_pod(ml_namespace).items
