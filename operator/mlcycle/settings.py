"""The operator's configuration: one class, read from `MLCYCLE_*` environment variables.

Credentials are not configuration: the operator's own admin credentials are read where they
are used (`mlcycle.tenancy`), and Pods get their namespace's through `secretKeyRef`s.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import os
from collections.abc import Mapping

from pydantic import BaseModel, Field, field_validator

from mlcycle_contract.environment import networks

ENV_PREFIX = "MLCYCLE_"
# Set in every pod: the apiserver's address, as pods reach it.
KUBERNETES_SERVICE_HOST = "KUBERNETES_SERVICE_HOST"


class Settings(BaseModel):
    """Every attribute is read from `MLCYCLE_<ATTRIBUTE IN UPPER CASE>`."""

    namespaces: list[str] = Field(
        default_factory=list,
        description="namespaces to watch (comma-separated); empty watches all namespaces",
    )
    mlflow_tracking_uri: str = Field(
        default="http://mlflow.mlcycle.svc:5000",
        description="MLflow tracking server as Pods reach it (and the operator, unless "
        "MLCYCLE_OPERATOR_MLFLOW_TRACKING_URI says otherwise)",
    )
    operator_mlflow_tracking_uri: str | None = Field(
        default=None, description="MLflow as the operator itself reaches it, if different"
    )
    mlflow_ui_url: str | None = Field(
        default=None, description="base URL of the MLflow UI for links in status; "
        "defaults to the tracking URI"
    )
    s3_endpoint: str = Field(
        default="http://minio.mlcycle.svc:9000", description="S3 endpoint as Pods reach it"
    )
    operator_s3_endpoint: str | None = Field(
        default=None, description="S3 (MinIO's admin API too) as the operator reaches it, "
        "if different")
    tenant_secret_name: str = Field(
        default="mlcycle-tenant", description="Secret the operator writes into each workload "
        "namespace with that namespace's own S3 and MLflow credentials, which its Pods use")
    data_bucket: str = Field(default="mlcycle-data", description="bucket for dataset snapshots")
    trainer_image: str = Field(
        default="ghcr.io/mlcycle/trainer:0.1.0", description="image of ingestion and training Jobs"
    )
    serving_image: str = Field(
        default="ghcr.io/mlcycle/serving:0.1.0", description="image of model servers"
    )
    image_pull_policy: str = Field(default="IfNotPresent", description="for every Pod we create")
    allowed_images: list[str] = Field(
        default_factory=list, description="images a spec.image override may name "
        "(comma-separated shell-style patterns: ghcr.io/acme/*); empty allows no override "
        "but the operator's own trainer and serving images")
    job_ttl_seconds: int = Field(
        default=86400, description="finished Jobs are deleted this long after they end"
    )
    serving_runtime: str = Field(
        default="",
        description="python=X,sklearn=Y,numpy=Z of the serving image; empty means the "
        "operator's own runtime (its image is built on the same runtime lock)",
    )
    peering: str = Field(
        default="", description="kopf peering to join (the chart sets it for its replicas); "
        "empty runs standalone, as a plain local process does")
    peering_lifetime: int = Field(
        default=60, ge=5, description="seconds after its last keep-alive that a replica's "
        "peering record expires, so a crashed leader is replaced")
    peering_priority: int | None = Field(
        default=None, description="explicit peering priority; unset, the oldest replica "
        "leads (priority = start time, negated)")
    scan_cluster: bool = Field(
        default=True, description="watch Namespaces and CRDs at run time; the chart sets "
        "false, which its least-privilege RBAC needs")
    health_port: int = Field(default=8080, description="port of the operator's /healthz")
    metrics_port: int = Field(
        default=0, ge=0, le=65535, description="port of the operator's Prometheus /metrics "
        "(mlcycle.metrics); 0 serves none (the chart sets one)")
    kill_points: str = Field(
        default="", description="TESTS ONLY: a file that arms kill points (mlcycle.faults); "
        "empty, as the chart leaves it, turns them off")
    source_deny_cidrs: list[str] = Field(
        default_factory=lambda: ["10.96.0.0/12"],
        description="networks a Dataset's url source must not resolve to (comma-separated "
        "CIDRs), besides the apiserver and the loopback, link-local, unspecified, multicast and "
        "reserved addresses the trainer always refuses; the default is kubeadm's Service range: "
        "set your cluster's")
    source_allow_cidrs: list[str] = Field(
        default_factory=list, description="networks a url source may resolve to although "
        "refused otherwise (comma-separated CIDRs); only what is listed")
    apiserver_address: str = Field(
        default="", description="the apiserver's IP address, refused as a url source's; "
        "defaults to KUBERNETES_SERVICE_HOST, which the operator's pod has")

    @field_validator("source_deny_cidrs", "source_allow_cidrs")
    @classmethod
    def _are_networks(cls, value: list[str]) -> list[str]:
        networks(",".join(value))
        return value

    @field_validator("apiserver_address")
    @classmethod
    def _is_an_address(cls, value: str) -> str:
        if value:
            ipaddress.ip_address(value)
        return value

    def image_allowed(self, image: str) -> bool:
        """Whether Pods may run `image`: one of the operator's own, or on the allow-list. An
        override runs with the namespace's credentials, so it must be trusted like ours."""
        return image in (self.trainer_image, self.serving_image) or any(
            fnmatch.fnmatchcase(image, pattern) for pattern in self.allowed_images)

    @property
    def operator_tracking_uri(self) -> str:
        return self.operator_mlflow_tracking_uri or self.mlflow_tracking_uri

    @property
    def operator_s3(self) -> str:
        return self.operator_s3_endpoint or self.s3_endpoint

    @property
    def ui_url(self) -> str:
        return (self.mlflow_ui_url or self.mlflow_tracking_uri).rstrip("/")

    @property
    def source_deny_networks(self) -> list[str]:
        """What an ingestion refuses on top of its built-in list: the deny list, the apiserver."""
        return [*self.source_deny_cidrs, *filter(None, [self.apiserver_address])]

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for name, field in cls.model_fields.items():
            raw = environ.get(f"{ENV_PREFIX}{name.upper()}", "").strip()
            if not raw:  # unset or empty: the default
                continue
            if field.annotation == list[str]:
                values[name] = [item.strip() for item in raw.split(",") if item.strip()]
            else:
                values[name] = raw
        values.setdefault("apiserver_address", environ.get(KUBERNETES_SERVICE_HOST, ""))
        return cls.model_validate(values)
