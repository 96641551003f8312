"""Pieces every Pod and Job the operator creates shares: names, labels, owner references,
the restricted security context, and the environment that reaches S3 and MLflow."""

from __future__ import annotations

import hashlib
from typing import Any

from mlcycle import tenancy
from mlcycle.objects import Object
from mlcycle.settings import Settings
from mlcycle_contract import constants, environment
from mlcycle_contract.api.common import ResourceRequirements

Manifest = dict[str, Any]
CONTAINER_NAME = "main"
RUN_AS_USER = 10001
MAX_NAME = 63


def child_name(owner: str, stage: str, *identity: object) -> str:
    """Deterministic and DNS-safe: the same owner, stage and identity give the same name,
    so a retried reconcile finds the object it created instead of making a twin."""
    digest = hashlib.sha256("/".join(map(str, identity)).encode()).hexdigest()[:6]
    suffix = f"-{stage}-{digest}"
    return f"{owner[: MAX_NAME - len(suffix)].rstrip('-')}{suffix}"


def owner_reference(owner: Object[Any]) -> Manifest:
    return {
        "apiVersion": constants.API_GROUP_VERSION,
        "kind": owner.names.kind,
        "name": owner.metadata.name,
        "uid": owner.metadata.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def labels(owner_label: str, owner_name: str, component: str) -> dict[str, str]:
    return {
        constants.LABEL_MANAGED_BY: constants.MANAGED_BY,
        constants.LABEL_COMPONENT: component,
        owner_label: owner_name,
    }


def pod_security_context() -> Manifest:
    """Pod Security Standard `restricted`, with a non-root user of the images."""
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "fsGroup": RUN_AS_USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> Manifest:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }


def resources(spec: ResourceRequirements | None) -> Manifest:
    """Requests and limits as given, with modest defaults so every Pod has both."""
    given = spec.to_wire() if spec else {}
    return {
        "requests": {"cpu": "100m", "memory": "256Mi", **given.get("requests", {})},
        "limits": {"memory": "2Gi", **given.get("limits", {})},
    }


def storage_environment(settings: Settings) -> list[Manifest]:
    """S3 and MLflow for boto3 and MLflow; the namespace's own credentials (never an admin's),
    only as secretKeyRefs to the Secret the operator writes there (mlcycle.tenancy)."""

    def secret(name: str, key: str) -> Manifest:
        return {"name": name, "valueFrom": {"secretKeyRef": {
            "name": settings.tenant_secret_name, "key": key}}}

    return [
        {"name": environment.MLFLOW_TRACKING_URI.name, "value": settings.mlflow_tracking_uri},
        {"name": environment.MLFLOW_S3_ENDPOINT_URL.name, "value": settings.s3_endpoint},
        {"name": environment.AWS_ENDPOINT_URL_S3.name, "value": settings.s3_endpoint},
        {"name": environment.DATA_BUCKET.name, "value": settings.data_bucket},
        secret(environment.AWS_ACCESS_KEY_ID.name, tenancy.S3_ACCESS_KEY),
        secret(environment.AWS_SECRET_ACCESS_KEY.name, tenancy.S3_SECRET_KEY),
        secret(environment.MLFLOW_TRACKING_USERNAME.name, tenancy.MLFLOW_USERNAME),
        secret(environment.MLFLOW_TRACKING_PASSWORD.name, tenancy.MLFLOW_PASSWORD),
        # A read-only root filesystem: everything that writes caches writes to /tmp.
        {"name": "HOME", "value": "/tmp"},
        {"name": "MPLCONFIGDIR", "value": "/tmp"},
    ]


def owner_environment(owner: Object[Any], image: str) -> list[Manifest]:
    metadata = owner.metadata
    return [
        {"name": environment.NAMESPACE.name, "value": metadata.namespace},
        {"name": environment.OWNER_NAME.name, "value": metadata.name},
        {"name": environment.OWNER_UID.name, "value": metadata.uid},
        {"name": environment.IMAGE.name, "value": image},
    ]


def trainer_job(
    *,
    name: str,
    owner: Object[Any],
    job_labels: dict[str, str],
    image: str,
    command: str,
    env: list[Manifest],
    settings: Settings,
    backoff_limit: int,
    active_deadline_seconds: int | None = None,
    resource_spec: ResourceRequirements | None = None,
) -> Manifest:
    """A batch/v1 Job running one command of the trainer image, failing at once on
    invalid input (the trainer's exit code) instead of retrying what cannot succeed."""
    job_spec: Manifest = {
        "backoffLimit": backoff_limit,
        "ttlSecondsAfterFinished": settings.job_ttl_seconds,
        "podFailurePolicy": {"rules": [{
            "action": "FailJob",
            "onExitCodes": {"containerName": CONTAINER_NAME, "operator": "In",
                            "values": [environment.EXIT_INVALID_INPUT]},
        }]},
        "template": {
            "metadata": {"labels": job_labels},
            "spec": {
                "restartPolicy": "Never",
                "automountServiceAccountToken": False,
                "securityContext": pod_security_context(),
                "containers": [{
                    "name": CONTAINER_NAME,
                    "image": image,
                    "imagePullPolicy": settings.image_pull_policy,
                    "args": [command],
                    "env": env,
                    "resources": resources(resource_spec),
                    "securityContext": container_security_context(),
                    "terminationMessagePath": environment.TERMINATION_LOG.default,
                    "terminationMessagePolicy": "FallbackToLogsOnError",
                    "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                }],
                "volumes": [{"name": "tmp", "emptyDir": {}}],
            },
        },
    }
    if active_deadline_seconds is not None:
        job_spec["activeDeadlineSeconds"] = active_deadline_seconds
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": owner.metadata.namespace,
            "labels": job_labels,
            "ownerReferences": [owner_reference(owner)],
        },
        "spec": job_spec,
    }
