"""Two real nodes: a second kubelet on its own containerd joins the running cluster for this
module (`localkube.realnode.node.add_node`) and leaves at its end, Node deleted.

A 2-replica ModelDeployment spreads over both nodes and answers through its Service, with
kube-proxy balancing over the two. Then the Helm chart's operator runs with one replica per
node, and the node that holds the active replica is killed (kubelet, containers and
containerd, as a failing machine): the standby on the other node takes over within the
peering's lifetime and the training run the killed replica was watching ends once, with one
Job and one model version.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from localkube.cluster import ClusterState, load_state
from localkube.images import CHART_IMAGES
from localkube.realnode import node
from localkube.realnode.config import NODE_NAME, NodeIdentity
from localkube.release import Helm, local_image_values, service_url
from localkube.stack import Stack
from localkube.testing import wait_for
from tests.e2e.mlhelpers import (
    kubectl_apply,
    load_example,
    wait_phase,
)
from tests.e2e.test_chart import (
    OPERATOR_LABELS,
    Release,
    active_replica,
    assert_trained_once,
    chart_only,
    restricted_namespace,
    start_slow_training,
)

pytestmark = pytest.mark.e2e
SECOND = NodeIdentity(2)
IRIS_ROW = {"sepal length (cm)": 6.3, "sepal width (cm)": 3.3, "petal length (cm)": 6.0,
            "petal width (cm)": 2.5}


@pytest.fixture(scope="module")
def two_nodes(mlstack: Stack) -> Iterator[dict[str, str]]:
    """Node `realnode-2` next to `realnode`, every image this module runs loaded into both;
    the images' references."""
    state = load_state(mlstack.paths)
    assert state is not None
    added = state.nodes == 1
    if added:
        node.add_node(state, mlstack.paths)
    try:
        yield node.load_images(mlstack.paths, ("trainer", "serving", *CHART_IMAGES))
    finally:
        if added:
            after = load_state(mlstack.paths)
            assert after is not None
            node.remove_node(after, mlstack.paths)


def set_unschedulable(core: client.CoreV1Api, name: str, unschedulable: bool) -> None:
    core.patch_node(name, {"spec": {"unschedulable": unschedulable}})


def test_a_two_replica_model_deployment_spreads_over_both_nodes_behind_one_service(
    two_nodes: dict[str, str], mlstack: Stack, k8s: client.ApiClient, ml_namespace: str
) -> None:
    model = f"iris-{ml_namespace}"
    for document in (load_example("iris/dataset.yaml"),
                     load_example("iris/trainingjob.yaml",
                                  {"spec": {"registry": {"modelName": model}}}),
                     load_example("iris/modeldeployment.yaml", {"spec": {
                         "model": {"name": model}, "replicas": 2,
                         "resources": {"requests": {"cpu": "10m"}}}})):
        code, output = kubectl_apply(mlstack, ml_namespace, document)
        assert code == 0, output
    served = wait_phase(k8s, "modeldeployments", ml_namespace, "iris", ("Available",),
                        timeout=600)
    assert served["status"]["readyReplicas"] == 2, served["status"]

    pods = client.CoreV1Api(k8s).list_namespaced_pod(
        ml_namespace, label_selector="mlcycle.dev/model-deployment=iris").items
    assert sorted(p.spec.node_name for p in pods if p.status.phase == "Running") == [
        NODE_NAME, SECOND.name]

    url = service_url(k8s, ml_namespace, "iris", "http")

    def served_by_each_replica() -> bool:
        for _ in range(10):
            response = httpx.post(f"{url}/invocations",
                                  json={"dataframe_records": [IRIS_ROW]}, timeout=30)
            assert response.status_code == 200, response.text
            assert response.json()["predictions"] == [2]
        return all(invocations_served(pod) > 0 for pod in pods)

    # kube-proxy balances the Service's traffic over both nodes' replicas once it has
    # programmed the second endpoint, which may come a sync period after the Pod is ready.
    wait_for("requests to the Service to reach the replica on each node",
             served_by_each_replica, timeout=90, interval=1)


def invocations_served(pod: Any) -> float:
    """The /invocations requests a serving Pod has answered, from its own metrics."""
    metrics = httpx.get(f"http://{pod.status.pod_ip}:8080/metrics", timeout=30).text
    return sum(float(value) for value in re.findall(
        r'^mlcycle_serving_requests_total\{[^}]*route="/invocations"[^}]*\} (\S+)$',
        metrics, re.MULTILINE))


@pytest.fixture
def one_replica_per_node(two_nodes: dict[str, str], mlstack: Stack, k8s: client.ApiClient,
                         tmp_path_factory: pytest.TempPathFactory) -> Iterator[Release]:
    """The chart installed while realnode-2 is cordoned (MLflow, MinIO and both operator
    replicas on realnode), then each replica deleted in turn, standby first, with the other
    node cordoned, so that the leader ends on realnode-2 and the standby on realnode.
    realnode-2 stays cordoned: nothing else lands on the node to kill."""
    core, kubeconfig = client.CoreV1Api(k8s), mlstack.cluster.kubeconfig
    namespace = restricted_namespace(k8s, kubeconfig, "hanode")
    workload = restricted_namespace(k8s, kubeconfig, "hanodewl")
    values = ["--set-json", f'operator.watchNamespaces=["{workload}"]',
              "--set", "operator.peering.lifetimeSeconds=20", *local_image_values(two_nodes)]
    helm = Helm.create(kubeconfig, tmp_path_factory.mktemp("helm"))
    with chart_only(mlstack, k8s, helm, namespace, workload) as cleanup:
        cleanup.callback(set_unschedulable, core, NODE_NAME, False)
        # Pods of a dead node stay Terminating until it returns: let them go (it will not).
        cleanup.callback(force_delete_pods_on, core, SECOND.name, (namespace, workload))
        release = Release(helm, namespace, workload, values=values, k8s=k8s, images=two_nodes)

        set_unschedulable(core, SECOND.name, True)
        release.install()
        wait_for("a leader (on realnode)", lambda: leader_node(release) == NODE_NAME, timeout=120)
        set_unschedulable(core, SECOND.name, False)
        set_unschedulable(core, NODE_NAME, True)
        replace_replica(release, leading=False)  # -> realnode-2
        set_unschedulable(core, NODE_NAME, False)
        set_unschedulable(core, SECOND.name, True)
        replace_replica(release, leading=True)  # -> realnode; the realnode-2 one leads
        wait_for("the realnode-2 replica to lead",
                 lambda: leader_node(release) == SECOND.name, timeout=120, interval=1)
        assert sorted(p.spec.node_name for p in operator_pods(release)) == [
            NODE_NAME, SECOND.name]
        yield release


def replace_replica(release: Release, leading: bool) -> None:
    """Delete the leading or the standby replica gracefully (kopf leaves the peering on its
    way out) and wait for its replacement to be ready."""
    leader = active_replica(release)
    gone = next(p.metadata.name for p in operator_pods(release)
                if (p.metadata.name == leader) == leading)
    client.CoreV1Api(release.k8s).delete_namespaced_pod(gone, release.namespace)
    wait_for("the replacement replica", lambda: len(
        [p for p in operator_pods(release) if p.metadata.name != gone]) == 2,
        timeout=180, interval=1)


def force_delete_pods_on(core: client.CoreV1Api, node_name: str,
                         namespaces: tuple[str, ...]) -> None:
    for namespace in namespaces:
        for pod in core.list_namespaced_pod(
                namespace, field_selector=f"spec.nodeName={node_name}").items:
            with contextlib.suppress(ApiException):
                core.delete_namespaced_pod(pod.metadata.name, namespace, grace_period_seconds=0)


def operator_pods(release: Release) -> list[Any]:
    return [p for p in release.pods(OPERATOR_LABELS)
            if p.status.phase == "Running" and all(
                c.ready for c in p.status.container_statuses or [])]


def leader_node(release: Release) -> str | None:
    """The node of the active replica; None while there is none (or no peering yet)."""
    try:
        leader = active_replica(release)
    except (ValueError, ApiException):
        return None
    return next((p.spec.node_name for p in release.pods(OPERATOR_LABELS)
                 if p.metadata.name == leader), None)


def test_killing_the_node_of_the_active_replica_hands_over_to_the_other_node(
    one_replica_per_node: Release, mlstack: Stack
) -> None:
    release = one_replica_per_node
    standby = next(p.metadata.name for p in operator_pods(release)
                   if p.spec.node_name == NODE_NAME)
    code, output = kubectl_apply(mlstack, release.workload, load_example("iris/dataset.yaml"))
    assert code == 0, output
    start_slow_training(release, mlstack, "iris-ha-node")

    state = load_state(mlstack.paths)
    assert isinstance(state, ClusterState)
    node.stop_node(state, mlstack.paths, SECOND.index)
    # The killed leader's peering record expires after its lifetime (20 s): then it leads.
    wait_for("the standby on realnode to lead", lambda: leader_node(release) == NODE_NAME,
             timeout=90, interval=0.5)
    assert_trained_once(release, "iris-ha-node", standby)
