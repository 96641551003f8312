"""The Helm chart on the local cluster: the Helm CLI, the values that point the chart at the
images built here, and the chart's Services as the host reaches them (their ClusterIPs,
through kube-proxy). `make up` installs MinIO and MLflow with it (localkube.chart_services);
the chart's end-to-end tests install whole releases."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from localkube import build
from localkube.paths import REPO_ROOT

CHART = REPO_ROOT / "charts" / "mlcycle"


class HelmError(RuntimeError):
    pass


@dataclass(frozen=True)
class Helm:
    """The Helm CLI against the local cluster, with its caches in a private directory."""

    binary: Path
    kubeconfig: Path
    home: Path

    @classmethod
    def create(cls, kubeconfig: Path, home: Path) -> Helm:
        return cls(build.ensure_binaries(["helm"])["helm"], kubeconfig, home)

    def run(self, *args: str, check: bool = True,
            timeout: float = 600) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
        }
        completed = subprocess.run(
            [str(self.binary), "--kubeconfig", str(self.kubeconfig), *args],
            capture_output=True, text=True, env=env, timeout=timeout,
        )
        if check and completed.returncode != 0:
            raise HelmError(f"helm {' '.join(args)} failed:\n{completed.stdout}\n"
                            f"{completed.stderr}")
        return completed

    def template(self, release: str, namespace: str, *values: str) -> list[dict[str, Any]]:
        out = self.run("template", release, str(CHART), "--namespace", namespace, *values).stdout
        return [doc for doc in yaml.safe_load_all(out) if doc]


def service_url(k8s: client.ApiClient, namespace: str, service: str, port_name: str) -> str:
    """The Service's ClusterIP and named port: kube-proxy routes it from this host too."""
    spec = client.CoreV1Api(k8s).read_namespaced_service(service, namespace).spec
    port: int = next(p.port for p in spec.ports if p.name == port_name)
    return f"http://{spec.cluster_ip}:{port}"


def image_values(key: str, reference: str) -> list[str]:
    """`--set` flags that point the chart's image `key` at an image built here."""
    repository, tag = reference.rsplit(":", 1)
    return ["--set", f"{key}.repository={repository}", "--set", f"{key}.tag={tag}"]


def local_image_values(built: dict[str, str]) -> list[str]:
    """Every image of the chart from `localkube.images` (MLflow from the operator's image,
    which has mlflow[auth]), never pulled: no registry has them."""
    return [
        *image_values("image", built["operator"]), "--set", "image.pullPolicy=Never",
        *image_values("mlflow.image", built["operator"]), "--set", "mlflow.image.pullPolicy=Never",
        *image_values("minio.image", built["minio"]), "--set", "minio.image.pullPolicy=Never",
        *image_values("workloads.trainerImage", built["trainer"]),
        *image_values("workloads.servingImage", built["serving"]),
        "--set", "workloads.imagePullPolicy=Never",
    ]
