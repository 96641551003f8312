"""Each workload namespace is a tenant, kept apart by MinIO's and MLflow's own access control.

- MinIO: a user per namespace whose policy allows its prefix of the data bucket
  (`datasets/<namespace>/`) and nothing else; MLflow's artifacts are not in reach, since the
  tracking server proxies them (`mlflow-artifacts:`) and checks MLflow's permissions first.
- MLflow (`mlflow server --app-name basic-auth`, `default_permission = NO_PERMISSIONS`): a user
  per namespace. It owns (MANAGE) what it creates, its experiments and registered models, and
  can read, register versions of or move the aliases of nothing else.

The operator holds the admin credentials of both, in its own environment (MinIO's
`MINIO_ROOT_USER` / `MINIO_ROOT_PASSWORD`, MLflow's `MLFLOW_TRACKING_USERNAME` /
`MLFLOW_TRACKING_PASSWORD`), and is the only holder of admin power: it writes each namespace's
own credentials into a Secret there, which the namespace's Pods reference. The user names are
derived from the namespace, never read back from the Secret, so editing the Secret cannot
make one namespace another.
"""

from __future__ import annotations

import base64
import os
import secrets
import threading
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import certifi
import urllib3
from minio import MinioAdmin
from minio.credentials.providers import StaticProvider
from minio.error import MinioAdminException

from mlcycle import kube
from mlcycle.mlflow_api import ADMIN_PASSWORD, ADMIN_USERNAME, Mlflow, MlflowError
from mlcycle.registry import RegistryUser
from mlcycle.settings import Settings
from mlcycle_contract import constants

Manifest = dict[str, Any]
# Keys of the tenant Secret.
S3_ACCESS_KEY, S3_SECRET_KEY = "accessKey", "secretKey"
MLFLOW_USERNAME, MLFLOW_PASSWORD = "mlflowUsername", "mlflowPassword"
SECRET_KEYS = (S3_ACCESS_KEY, S3_SECRET_KEY, MLFLOW_USERNAME, MLFLOW_PASSWORD)
USER_PREFIX = "mlcycle-ns-"
# MinIO's admin client waits 5 minutes to connect by default: a connection to a MinIO Pod
# that has just gone (its Service still routing to it) held the handler over a minute. Fail
# fast instead; the handler tries again in 10 s (TenancyUnavailable).
MINIO_ADMIN_TIMEOUT = urllib3.Timeout(connect=5.0, read=30.0)
MINIO_ADMIN_RETRIES = urllib3.Retry(total=2, backoff_factor=0.5,
                                    status_forcelist=[500, 502, 503, 504])


class TenancyUnavailable(Exception):
    """MinIO's or MLflow's admin API failed, or the tenant Secret is unusable (transient)."""


@dataclass(frozen=True)
class Tenant:
    namespace: str
    s3_secret_key: str = field(repr=False)
    mlflow_password: str = field(repr=False)

    @property
    def user(self) -> str:
        """The namespace's user name, in MinIO (its access key) and in MLflow."""
        return tenant_user(self.namespace)

    @property
    def registry_user(self) -> RegistryUser:
        return RegistryUser(self.user, self.mlflow_password)


def tenant_user(namespace: str) -> str:
    return f"{USER_PREFIX}{namespace}"


def data_prefix(namespace: str) -> str:
    """Where the namespace's data lives in the data bucket: its sources and snapshots."""
    return f"datasets/{namespace}/"


def storage_policy(namespace: str, data_bucket: str) -> Manifest:
    """Pure: the MinIO policy of the namespace's user, its data prefix and nothing else."""
    prefix = data_prefix(namespace)
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
         "Resource": [f"arn:aws:s3:::{data_bucket}/{prefix}*"]},
        {"Effect": "Allow", "Action": ["s3:ListBucket"],
         "Resource": [f"arn:aws:s3:::{data_bucket}"],
         "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*"]}}},
    ]}


def tenant_secret(namespace: str, settings: Settings) -> Manifest:
    """Pure but for fresh random secrets: the Secret the namespace's Pods read."""
    user = tenant_user(namespace)
    return {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": settings.tenant_secret_name, "namespace": namespace,
                     "labels": {constants.LABEL_MANAGED_BY: constants.MANAGED_BY}},
        "stringData": {S3_ACCESS_KEY: user, S3_SECRET_KEY: secrets.token_urlsafe(30),
                       MLFLOW_USERNAME: user, MLFLOW_PASSWORD: secrets.token_urlsafe(30)},
    }


_provisioned: dict[str, Tenant] = {}
# One provisioning at a time: each MinIO admin call derives its payload's key with Argon2id
# in 64 MiB and 0.1 s of CPU, and a burst of new objects in a new namespace had every worker
# thread provision the same tenant at once (6 x 64 MiB was most of the operator's peak RSS).
_provisioning = threading.Lock()


def ensure_tenant(namespace: str, settings: Settings) -> Tenant:
    """The namespace's Secret, and its MinIO and MLflow users with the Secret's credentials:
    made again whenever this process has not made them from this very Secret (at start, so a
    restarted MinIO or MLflow gets them back, and for a namespace deleted and made again)."""
    tenant = _from_secret(namespace, kube.ensure_secret(
        namespace, tenant_secret(namespace, settings)), settings)
    if _provisioned.get(namespace) == tenant:
        return tenant
    with _provisioning:
        if _provisioned.get(namespace) != tenant:
            _provision_storage(tenant, settings)
            _provision_registry(tenant, settings)
            _provisioned[namespace] = tenant
    return tenant


def _from_secret(namespace: str, data: dict[str, str], settings: Settings) -> Tenant:
    missing = [key for key in SECRET_KEYS if not data.get(key)]
    if missing:
        raise TenancyUnavailable(
            f"Secret {settings.tenant_secret_name} in namespace {namespace} lacks "
            f"{', '.join(missing)}; delete it and the operator writes a new one")
    value = {key: base64.b64decode(data[key]).decode() for key in SECRET_KEYS}
    return Tenant(namespace, value[S3_SECRET_KEY], value[MLFLOW_PASSWORD])


def _admin_environment(*names: str) -> list[str]:
    values = [os.environ.get(name, "") for name in names]
    if not all(values):
        raise TenancyUnavailable(f"the operator has no {' / '.join(names)} in its environment")
    return values


def _provision_storage(tenant: Tenant, settings: Settings) -> None:
    endpoint = urllib.parse.urlsplit(settings.operator_s3)
    root_user, root_password = _admin_environment("MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD")
    http_client = urllib3.PoolManager(
        timeout=MINIO_ADMIN_TIMEOUT, retries=MINIO_ADMIN_RETRIES, cert_reqs="CERT_REQUIRED",
        ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where())
    admin = MinioAdmin(endpoint=endpoint.netloc, secure=endpoint.scheme == "https",
                       credentials=StaticProvider(root_user, root_password),
                       http_client=http_client)
    policy = f"{USER_PREFIX}{tenant.namespace}"
    try:
        admin.policy_add(policy, policy=storage_policy(tenant.namespace, settings.data_bucket))
        admin.user_add(tenant.user, tenant.s3_secret_key)
        admin.policy_set(policy, user=tenant.user)
    except (MinioAdminException, urllib3.exceptions.HTTPError, OSError) as error:
        raise TenancyUnavailable(f"MinIO admin API: {type(error).__name__}") from error


def _provision_registry(tenant: Tenant, settings: Settings) -> None:
    """The namespace's MLflow user with the Secret's password: made, or its password set
    again, through the basic-auth app's REST API."""
    _admin_environment(ADMIN_USERNAME, ADMIN_PASSWORD)
    admin = Mlflow.admin(settings.operator_tracking_uri)
    try:
        try:
            admin.create_user(tenant.user, tenant.mlflow_password)
        except MlflowError as error:
            if error.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            admin.update_user_password(tenant.user, tenant.mlflow_password)
    except MlflowError as error:
        raise TenancyUnavailable(f"MLflow admin API: {error.error_code}") from error
