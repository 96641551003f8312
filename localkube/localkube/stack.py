"""The whole mlcycle stack on the local cluster: cluster, MinIO, MLflow, the CRDs and the
operator (as a local process, configured as the Helm chart would configure its Pod).

`up()` reuses whatever already runs; the test fixtures and `make up` / `make demo` share it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from localkube import build, cluster, processes, services
from localkube.cluster import ClusterState
from localkube.paths import REPO_ROOT, LocalPaths, local_paths
from localkube.readiness import api_client
from localkube.services import S3Credentials, ServicesState

CRDS_DIR = REPO_ROOT / "crds"
S3_SECRET = "mlcycle-s3"
OPERATOR = "operator"


@dataclass(frozen=True)
class Stack:
    cluster: ClusterState
    services: ServicesState
    credentials: S3Credentials
    paths: LocalPaths

    def kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.cluster.kubectl), "--kubeconfig", str(self.cluster.kubeconfig), *args],
            capture_output=True, text=True, check=check, timeout=300,
        )


def _operator_pid_file(paths: LocalPaths) -> Path:
    return paths.root / "operator.pid"


def operator_pid(paths: LocalPaths) -> int | None:
    try:
        pid = int(_operator_pid_file(paths).read_text())
    except (FileNotFoundError, ValueError):
        return None
    return pid if processes.alive(pid) else None


def operator_environment(stack_cluster: ClusterState, state: ServicesState) -> dict[str, str]:
    """The operator's settings for the local stack: pods reach MLflow and MinIO on the bridge."""
    return {
        **os.environ,
        "KUBECONFIG": str(stack_cluster.kubeconfig),
        "MLCYCLE_MLFLOW_TRACKING_URI": state.mlflow_url,
        "MLCYCLE_S3_ENDPOINT": state.s3_endpoint,
        "MLCYCLE_DATA_BUCKET": state.data_bucket,
        "MLCYCLE_HEALTH_PORT": str(processes.free_port()),
    }


def start_operator(stack: Stack) -> int:
    log = stack.paths.logs / "operator.log"
    pid = processes.start([sys.executable, "-m", "mlcycle"], log,
                          env={**operator_environment(stack.cluster, stack.services),
                               **services.admin_environment(stack.paths)})
    _operator_pid_file(stack.paths).write_text(str(pid))
    return pid


def stop_operator(paths: LocalPaths) -> None:
    pid = operator_pid(paths)
    if pid is not None:
        processes.stop(pid)
    _operator_pid_file(paths).unlink(missing_ok=True)


def install_crds(stack_cluster: ClusterState) -> None:
    subprocess.run(
        [str(stack_cluster.kubectl), "--kubeconfig", str(stack_cluster.kubeconfig), "apply",
         "--server-side", "-f", str(CRDS_DIR)],
        check=True, capture_output=True, text=True, timeout=120,
    )
    subprocess.run(
        [str(stack_cluster.kubectl), "--kubeconfig", str(stack_cluster.kubeconfig), "wait",
         "--for=condition=Established", "--timeout=60s", "-f", str(CRDS_DIR)],
        check=True, capture_output=True, text=True, timeout=120,
    )


def install_s3_secret(stack: Stack, namespace: str) -> None:
    """The Secret that workloads in `namespace` read their S3 credentials from."""
    secret = client.V1Secret(
        metadata=client.V1ObjectMeta(name=S3_SECRET, namespace=namespace),
        string_data={"accessKey": stack.credentials.access_key,
                     "secretKey": stack.credentials.secret_key},
    )
    core = client.CoreV1Api(api_client(stack.cluster.kubeconfig))
    try:
        core.create_namespaced_secret(namespace, secret)
    except ApiException as error:
        if error.status != 409:
            raise
        core.replace_namespaced_secret(S3_SECRET, namespace, secret)


def up(progress: build.Progress = build.say) -> Stack:
    paths = local_paths()
    cluster_was_running = cluster.is_running(cluster.load_state(paths), paths)
    stack_cluster = cluster.up(progress)
    service_state = services.load_state(paths)
    if not (cluster_was_running and services.is_running(service_state)):
        services.down(paths, progress)
        service_state = services.up(paths, stack_cluster.host_ip, progress)
    assert service_state is not None
    stack = Stack(stack_cluster, service_state, services.load_credentials(paths), paths)
    install_crds(stack_cluster)
    if operator_pid(paths) is None:
        start_operator(stack)
        progress("The mlcycle operator is running (log: .local/logs/operator.log)")
    return stack


def down(progress: build.Progress = build.say) -> None:
    paths = local_paths()
    stop_operator(paths)
    services.down(paths, progress)
    cluster.down(progress)
