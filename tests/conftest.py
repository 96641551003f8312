"""Session-wide fixtures: the local cluster and the mlcycle stack on it (each started once,
reused when already up, and stopped at the end only if the session started it), and a
fresh namespace per test that is deleted, for real, afterwards: the test ends when its
Pods are gone."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from kubernetes import client

from localkube import cluster, processes, services, stack, testing
from localkube.cluster import ClusterState
from localkube.paths import local_paths
from localkube.readiness import api_client
from localkube.stack import Stack


@pytest.fixture(scope="session")
def local_cluster() -> Iterator[ClusterState]:
    already_running = cluster.is_running(cluster.load_state())
    state = cluster.up()
    yield state
    if not already_running:
        service_state = services.load_state(local_paths())
        started = [*state.pids.values(), *(service_state.pids.values() if service_state else [])]
        stack.down()
        survivors = [pid for pid in started if processes.alive(pid)]
        assert not survivors, f"processes left running after `down`: {survivors}"


@pytest.fixture(scope="session")
def mlstack(local_cluster: ClusterState) -> Iterator[Stack]:
    """Cluster, MinIO, MLflow, the CRDs and the operator."""
    paths = local_paths()
    already_running = services.is_running(paths, services.load_state(paths)) and (
        stack.operator_running(paths))
    running = stack.up()
    # The tests inspect MLflow as its admin; no Pod gets these (each namespace has its own).
    admin = services.load_mlflow_admin(paths)
    with pytest.MonkeyPatch.context() as environment:
        environment.setenv("MLFLOW_TRACKING_USERNAME", admin.username)
        environment.setenv("MLFLOW_TRACKING_PASSWORD", admin.password)
        yield running
    if not already_running:
        stack.stop_operator(paths)
        services.down(paths)


class ServiceEnvironment(dict[str, str]):
    """Environment variables whose secret values never show in a test report."""

    def __repr__(self) -> str:
        return repr({k: "***" if "SECRET" in k or "PASSWORD" in k else v
                     for k, v in self.items()})


@pytest.fixture(scope="session")
def services_env(mlstack: Stack) -> dict[str, str]:
    """What a process needs to reach MLflow and MinIO, as the trainer's pods get it."""
    return ServiceEnvironment({
        **services.s3_environment(mlstack.services, mlstack.credentials),
        "MLFLOW_TRACKING_USERNAME": os.environ["MLFLOW_TRACKING_USERNAME"],
        "MLFLOW_TRACKING_PASSWORD": os.environ["MLFLOW_TRACKING_PASSWORD"],
        "AWS_ENDPOINT_URL_S3": mlstack.services.s3_endpoint,
        "MLFLOW_TRACKING_URI": mlstack.services.mlflow_url,
        "MLCYCLE_DATA_BUCKET": mlstack.services.data_bucket,
    })


@pytest.fixture(scope="session")
def k8s(local_cluster: ClusterState) -> client.ApiClient:
    return api_client(local_cluster.kubeconfig)


@pytest.fixture
def namespace(local_cluster: ClusterState) -> Iterator[str]:
    name = testing.create_namespace(local_cluster.kubeconfig)
    yield name
    testing.delete_namespace(local_cluster.kubeconfig, name, until_gone=False)


@pytest.fixture
def ml_namespace(mlstack: Stack, namespace: str) -> str:
    """A fresh namespace the operator serves (it writes the namespace's own credentials)."""
    return namespace


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `mlflow server` (SQLite registry, artifacts proxied to a local directory), as
    the cluster runs it: the model server and the trainer use it over REST only."""
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    root = tmp_path_factory.mktemp("mlflow")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    log = (root / "server.log").open("wb")
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "mlflow", "server"),
            *("--backend-store-uri", f"sqlite:///{root}/mlflow.db"),
            *("--artifacts-destination", str(root / "artifacts")),
            *("--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((root / "server.log").read_text()[-2000:]) from None
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:  # its gunicorn/uvicorn child can be slow to go
            process.kill()
            process.wait()
        log.close()
