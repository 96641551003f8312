"""Node and Lease builders (localkube.node.nodeinfo)."""

from __future__ import annotations

from pathlib import Path

from localkube.node.config import NodeConfig
from localkube.node.nodeinfo import HostFacts, build_lease, build_node, build_node_status

CONFIG = NodeConfig(
    node_name="localnode",
    kubeconfig=Path("/k"),
    state_dir=Path("/s"),
    bridge="mlcycle0",
    host_ip="10.244.0.1",
    pod_cidr="10.244.0.0/24",
    api_host="10.244.0.1",
    api_port=6443,
    ca_file=Path("/ca"),
    kubelet_port=10250,
    kubelet_cert_file=Path("/c"),
    kubelet_key_file=Path("/k"),
)
FACTS = HostFacts(
    machine_id="m", boot_id="b", kernel_version="6.1", os_image="Debian", ephemeral_storage=1000
)


def test_node_object() -> None:
    node = build_node(CONFIG)
    labels = node["metadata"]["labels"]
    assert labels["kubernetes.io/hostname"] == "localnode"
    assert labels["kubernetes.io/os"] == "linux"
    assert labels["kubernetes.io/arch"] == "amd64"
    assert node["spec"]["podCIDR"] == "10.244.0.0/24"


def test_node_status() -> None:
    st = build_node_status(
        CONFIG, FACTS, kubelet_version="v1.36.3", now="T1", previous_conditions=[]
    )
    cond = {c["type"]: c for c in st["conditions"]}
    assert cond["Ready"]["status"] == "True"
    assert all(
        cond[t]["status"] == "False" for t in ("MemoryPressure", "DiskPressure", "PIDPressure")
    )
    assert st["capacity"] == st["allocatable"]
    assert st["capacity"]["pods"] == "110"
    assert st["capacity"]["ephemeral-storage"] == "1000"
    assert st["addresses"] == [
        {"type": "InternalIP", "address": "10.244.0.1"},
        {"type": "Hostname", "address": "localnode"},
    ]
    assert st["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 10250}}
    assert st["nodeInfo"]["kubeletVersion"] == "v1.36.3"
    later = build_node_status(
        CONFIG, FACTS, kubelet_version="v1.36.3", now="T2", previous_conditions=st["conditions"]
    )
    ready = {c["type"]: c for c in later["conditions"]}["Ready"]
    assert ready["lastHeartbeatTime"] == "T2"
    assert ready["lastTransitionTime"] == "T1"


def test_lease() -> None:
    lease = build_lease(CONFIG, node_uid="u", renew_time="2026-01-01T00:00:00.000000Z")
    assert lease["metadata"] == {
        "name": "localnode",
        "namespace": "kube-node-lease",
        "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": "localnode", "uid": "u"}],
    }
    assert lease["spec"]["holderIdentity"] == "localnode"
    assert lease["spec"]["leaseDurationSeconds"] == 40
