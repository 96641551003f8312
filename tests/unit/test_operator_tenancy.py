"""The pure parts of tenancy: the MinIO policy of a namespace's user, the Secret its Pods read,
and the user names, which come from the namespace and never from the Secret."""

from __future__ import annotations

import base64
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import urllib3

from mlcycle import tenancy
from mlcycle.settings import Settings

SETTINGS = Settings()


def test_a_namespaces_storage_policy_allows_its_prefix_of_the_data_bucket_only() -> None:
    policy = tenancy.storage_policy("team-a", "mlcycle-data")
    objects, listing = policy["Statement"]
    assert objects == {"Effect": "Allow", "Action": ["s3:GetObject", "s3:PutObject"],
                       "Resource": ["arn:aws:s3:::mlcycle-data/datasets/team-a/*"]}
    assert listing["Action"] == ["s3:ListBucket"]
    assert listing["Resource"] == ["arn:aws:s3:::mlcycle-data"]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["datasets/team-a/*"]}}
    assert "mlflow" not in str(policy)  # artifacts only through MLflow's proxy


def test_the_secret_holds_fresh_random_credentials_named_after_the_namespace() -> None:
    first, second = (tenancy.tenant_secret("team-a", SETTINGS) for _ in range(2))
    assert first["metadata"]["name"] == "mlcycle-tenant"
    assert first["metadata"]["namespace"] == "team-a"
    data = first["stringData"]
    assert data["accessKey"] == data["mlflowUsername"] == "mlcycle-ns-team-a"
    assert len(data["secretKey"]) >= 32 and len(data["mlflowPassword"]) >= 32
    assert data["secretKey"] != second["stringData"]["secretKey"]
    assert data["secretKey"] != data["mlflowPassword"]


def test_the_user_comes_from_the_namespace_whatever_the_secret_says() -> None:
    data = {key: base64.b64encode(value.encode()).decode() for key, value in {
        "accessKey": "mlcycle-ns-team-b", "secretKey": "s" * 40,
        "mlflowUsername": "admin", "mlflowPassword": "p" * 40}.items()}
    tenant = tenancy._from_secret("team-a", data, SETTINGS)
    assert tenant.user == "mlcycle-ns-team-a"
    assert tenant.registry_user.username == "mlcycle-ns-team-a"
    assert "s" * 40 not in repr(tenant) and "p" * 40 not in repr(tenant.registry_user)


def test_a_secret_missing_keys_is_reported_without_its_values() -> None:
    with pytest.raises(tenancy.TenancyUnavailable) as missing:
        tenancy._from_secret("team-a", {"accessKey": "eA=="}, SETTINGS)
    assert str(missing.value) == (
        "Secret mlcycle-tenant in namespace team-a lacks secretKey, mlflowUsername, "
        "mlflowPassword; delete it and the operator writes a new one")


def test_a_burst_of_reconciles_in_a_new_namespace_provisions_its_tenant_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Each MinIO admin call derives a key in 64 MiB: threads reconciling a new namespace's
    objects at once must not all provision it (one at a time, and once per Secret)."""
    data = {key: base64.b64encode(b"value").decode() for key in tenancy.SECRET_KEYS}
    monkeypatch.setattr(tenancy.kube, "ensure_secret", lambda namespace, manifest: data)
    monkeypatch.setattr(tenancy, "_provisioned", {})
    running, most_at_once, provisioned = [0], [0], []

    def provision_storage(tenant: tenancy.Tenant, settings: Settings) -> None:
        running[0] += 1
        most_at_once[0] = max(most_at_once[0], running[0])
        time.sleep(0.05)
        provisioned.append(tenant.namespace)
        running[0] -= 1

    monkeypatch.setattr(tenancy, "_provision_storage", provision_storage)
    monkeypatch.setattr(tenancy, "_provision_registry", lambda tenant, settings: None)
    namespaces = ["team-a"] * 6 + ["team-b"] * 6
    with ThreadPoolExecutor(12) as pool:
        tenants = list(pool.map(lambda ns: tenancy.ensure_tenant(ns, SETTINGS), namespaces))
    assert sorted(provisioned) == ["team-a", "team-b"]
    assert most_at_once[0] == 1
    assert [tenant.namespace for tenant in tenants] == namespaces


def test_a_minio_that_accepts_and_never_answers_is_unavailable_within_the_timeout(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A MinIO Pod gone behind its Service held the admin client's connection (5 minutes by
    default, over a minute seen): the handler must get TenancyUnavailable, retried soon."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        monkeypatch.setenv("MINIO_ROOT_USER", "root")
        monkeypatch.setenv("MINIO_ROOT_PASSWORD", "root-password")
        monkeypatch.setattr(tenancy, "MINIO_ADMIN_TIMEOUT", urllib3.Timeout(connect=0.5, read=0.5))
        settings = Settings(s3_endpoint=f"http://127.0.0.1:{silent.getsockname()[1]}")
        started = time.monotonic()
        with pytest.raises(tenancy.TenancyUnavailable) as raised:
            tenancy._provision_storage(tenancy.Tenant("team-a", "s3-secret", "x"), settings)
    assert time.monotonic() - started < 10
    assert "s3-secret" not in str(raised.value) and "root-password" not in str(raised.value)
