"""Shared steps of the ML end-to-end tests: apply an example with a few fields changed, wait
for a custom resource's phase, and read what the operator and MLflow recorded."""

from __future__ import annotations

import copy
import subprocess
from typing import Any

import boto3
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from localkube.paths import REPO_ROOT
from localkube.stack import Stack
from localkube.testing import wait_for

EXAMPLES = REPO_ROOT / "examples"
GROUP, VERSION = "mlcycle.dev", "v1alpha1"


def storage(mlstack: Stack) -> Any:
    """An S3 client as MinIO's root user: the tests' own hand in the object store."""
    return boto3.client("s3", endpoint_url=mlstack.services.s3_endpoint,
                        aws_access_key_id=mlstack.credentials.access_key,
                        aws_secret_access_key=mlstack.credentials.secret_key)


def merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_example(path: str, changes: dict[str, Any] | None = None) -> dict[str, Any]:
    document = yaml.safe_load((EXAMPLES / path).read_text())
    return merge(document, changes or {})


def kubectl_apply(stack: Stack, namespace: str, document: dict[str, Any]) -> tuple[int, str]:
    """Apply one document as a user would; returns kubectl's exit code and output."""
    completed = subprocess.run(
        [str(stack.cluster.kubectl), "--kubeconfig", str(stack.cluster.kubeconfig),
         "apply", "-n", namespace, "-f", "-"],
        input=yaml.safe_dump(document), capture_output=True, text=True, timeout=60,
    )
    return completed.returncode, completed.stdout + completed.stderr


def read(k8s: client.ApiClient, plural: str, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = client.CustomObjectsApi(k8s).get_namespaced_custom_object(
        GROUP, VERSION, namespace, plural, name)
    return found


def wait_phase(k8s: client.ApiClient, plural: str, namespace: str, name: str,
               phases: tuple[str, ...], timeout: float = 240,
               reason: str | None = None) -> dict[str, Any]:
    """The object once its phase is one of `phases` (and its Ready reason `reason`: a new
    object's first status, Accepted, has the phase it waits in, Pending or Progressing)."""
    def reached() -> dict[str, Any] | None:
        try:
            found = read(k8s, plural, namespace, name)
        except ApiException:
            return None
        if (found.get("status") or {}).get("phase") not in phases:
            return None
        return found if reason is None or condition(found, "Ready")["reason"] == reason else None

    return wait_for(f"{plural}/{name} to reach {phases}" + (f" ({reason})" if reason else ""),
                    reached, timeout=timeout, interval=1)


def condition(resource: dict[str, Any], type_: str) -> dict[str, Any]:
    return next(c for c in resource["status"]["conditions"] if c["type"] == type_)


def jobs_with_label(k8s: client.ApiClient, namespace: str, selector: str) -> list[Any]:
    return list(client.BatchV1Api(k8s).list_namespaced_job(
        namespace, label_selector=selector).items)


def events_for(k8s: client.ApiClient, namespace: str, name: str) -> list[Any]:
    events = client.CoreV1Api(k8s).list_namespaced_event(
        namespace, field_selector=f"involvedObject.name={name}").items
    return list(events)

