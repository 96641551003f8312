"""Session-wide fixtures: the local cluster (started once, reused when already up) and a
fresh namespace per test that is deleted, for real, afterwards."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client

from localkube import cluster, testing
from localkube.cluster import ClusterState
from localkube.readiness import api_client


@pytest.fixture(scope="session")
def local_cluster() -> Iterator[ClusterState]:
    state = cluster.load_state()
    already_running = cluster.is_running(state)
    state = cluster.up()
    yield state
    if not already_running:
        cluster.down()


@pytest.fixture(scope="session")
def k8s(local_cluster: ClusterState) -> client.ApiClient:
    return api_client(local_cluster.kubeconfig)


@pytest.fixture
def namespace(local_cluster: ClusterState) -> Iterator[str]:
    name = testing.create_namespace(local_cluster.kubeconfig)
    yield name
    testing.delete_namespace(local_cluster.kubeconfig, name)
