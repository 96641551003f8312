"""The real node's settings (localkube.realnode.config, .dns): pure builders, checked
without starting anything."""

from __future__ import annotations

import ipaddress
import itertools
import json
import os
import tomllib
from pathlib import Path
from typing import Any

import pytest

from localkube import cluster, network
from localkube.realnode import config, dns, host, node
from localkube.realnode.config import KubeletSettings, NodeDirs, NodeIdentity

DIRS = NodeDirs(Path("/x/.local/realnode"))
SETTINGS = KubeletSettings(Path("/ca.crt"), Path("/s.crt"), Path("/s.key"), 10250, 10248, 2)
# What the builders made for the one node before there could be several (commit cf766ab):
# node 1 must keep it, so that existing state, tests and docs stay valid.
ONE_NODE = json.loads((Path(__file__).parent / "realnode_one_node.json").read_text())


def test_containerd_config_has_the_settings_this_machine_needs() -> None:
    parsed = tomllib.loads(config.containerd_config(DIRS, "localkube.local/pause:abc"))
    assert parsed["root"] == "/x/.local/realnode/containerd/root"
    assert parsed["grpc"]["address"] == str(DIRS.containerd_socket)
    cri = parsed["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["restrict_oom_score_adj"] is True
    assert cri["sandbox_image"] == "localkube.local/pause:abc"
    assert cri["cni"] == {"bin_dir": "/usr/lib/cni", "conf_dir": str(DIRS.cni_conf_dir),
                          "max_conf_num": 1}
    runc = cri["containerd"]["runtimes"]["runc"]
    assert cri["containerd"]["default_runtime_name"] == "runc"
    assert runc["options"] == {"BinaryName": "/usr/sbin/runc", "SystemdCgroup": False}


def test_cni_network_is_apart_from_the_node_agents() -> None:
    conflist = config.cni_conflist(DIRS)
    bridge, portmap = conflist["plugins"]
    assert [bridge["type"], portmap["type"]] == ["bridge", "portmap"]
    assert bridge["bridge"] != network.BRIDGE
    subnet = ipaddress.ip_network(bridge["ipam"]["ranges"][0][0]["subnet"])
    assert not subnet.overlaps(ipaddress.ip_network(network.POD_CIDR))
    assert bridge["ipam"]["dataDir"].startswith("/x/.local/realnode/")
    assert config.FIRST_NODE.ip == bridge["ipam"]["ranges"][0][0]["gateway"] == "10.244.1.1"


def test_kubelet_config() -> None:
    settings = KubeletSettings(Path("/ca.crt"), Path("/s.crt"), Path("/s.key"), 10250, 10248, 2)
    kubelet = config.kubelet_config(DIRS, settings)
    assert kubelet["cgroupDriver"] == "cgroupfs"
    assert kubelet["failCgroupV1"] is False
    assert kubelet["failSwapOn"] is False
    assert kubelet["address"] == config.FIRST_NODE.ip
    assert kubelet["containerRuntimeEndpoint"] == f"unix://{DIRS.containerd_socket}"
    assert kubelet["clusterDNS"] == [config.CLUSTER_DNS]
    assert kubelet["authentication"]["anonymous"]["enabled"] is False
    args = config.kubelet_args(DIRS, Path("/k"))
    assert not any(arg.startswith("--register-with-taints") for arg in args)
    assert f"--node-ip={config.FIRST_NODE.ip}" in args


def test_kube_proxy_runs_iptables_mode() -> None:
    proxy = config.kube_proxy_config(Path("/k"), 1, 2)
    assert proxy["mode"] == "iptables"
    assert proxy["hostnameOverride"] == config.NODE_NAME
    assert ipaddress.ip_network(config.FIRST_NODE.pod_cidr).subnet_of(
        ipaddress.ip_network(proxy["clusterCIDR"]))


def test_coredns_serves_the_cluster_dns_address_from_the_real_node() -> None:
    manifests = {m["kind"]: m for m in dns.build_manifests("img:1")}
    assert manifests["Service"]["spec"]["clusterIP"] == config.CLUSTER_DNS
    pod = manifests["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["imagePullPolicy"] == "Never"
    assert f".:{dns.PORT}" in manifests["ConfigMap"]["data"]["Corefile"]


def test_node_one_builds_exactly_the_single_node_of_before() -> None:
    first = NodeIdentity(1)
    assert first.dirs(Path("/x/.local")) == DIRS
    assert config.containerd_config(DIRS, "localkube.local/pause:abc", first) == \
        ONE_NODE["containerd"]
    assert config.cni_conflist(DIRS, first) == ONE_NODE["cni"]
    assert config.kubelet_config(DIRS, SETTINGS, first) == ONE_NODE["kubelet"]
    assert config.kubelet_args(DIRS, Path("/k"), first) == ONE_NODE["kubelet_args"]
    assert config.kube_proxy_config(Path("/k"), 1, 2, (first,)) == ONE_NODE["kube_proxy"]
    assert (first.name, first.bridge, first.pod_cidr, first.ip, first.cni_conf_file) == (
        "realnode", "mlcycle1", "10.244.1.0/24", "10.244.1.1", "10-mlcycle-realnode.conflist")
    assert (first.client_cert, first.serving_cert, first.containerd, first.kubelet) == (
        "realnode-client", "realnode-serving", "containerd", "kubelet")
    assert (first.cgroup_root, first.pods_cgroup) == (None, "kubepods")


def test_node_two_has_its_own_names_range_and_state() -> None:
    second = NodeIdentity(2)
    dirs = second.dirs(Path("/x/.local"))
    assert (second.name, second.bridge, second.pod_cidr, second.ip) == (
        "realnode-2", "mlcycle2", "10.244.2.0/24", "10.244.2.1")
    assert dirs.root == Path("/x/.local/realnode-2")
    assert (second.containerd, second.kubelet) == ("containerd-2", "kubelet-2")
    assert (second.cgroup_root, second.pods_cgroup) == ("/mlcycle-2", "mlcycle-2/kubepods")

    parsed = tomllib.loads(config.containerd_config(dirs, "p", second))
    assert parsed["root"] == "/x/.local/realnode-2/containerd/root"
    runc = parsed["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["runtimes"]["runc"]
    assert runc["options"]["Root"] == "/x/.local/realnode-2/containerd/state/runc"

    bridge = config.cni_conflist(dirs, second)["plugins"][0]
    assert config.cni_conflist(dirs, second)["name"] == "mlcycle-realnode-2"
    assert bridge["bridge"] == "mlcycle2"
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.244.2.0/24", "gateway": "10.244.2.1"}]]
    assert bridge["ipam"]["dataDir"] == "/x/.local/realnode-2/cni/networks"

    kubelet = config.kubelet_config(dirs, SETTINGS, second)
    assert kubelet["address"] == "10.244.2.1"
    assert kubelet["cgroupRoot"] == "/mlcycle-2"
    assert kubelet["podLogsDir"] == "/x/.local/realnode-2/pod-logs"
    assert kubelet["containerRuntimeEndpoint"] == \
        "unix:///x/.local/realnode-2/containerd/containerd.sock"
    args = config.kubelet_args(dirs, Path("/k"), second)
    assert "--hostname-override=realnode-2" in args
    assert "--node-ip=10.244.2.1" in args
    assert "--root-dir=/x/.local/realnode-2/kubelet" in args


def _paths(dirs: NodeDirs) -> set[Path]:
    return {getattr(dirs, name) for name in (
        "root", "containerd_root", "containerd_state", "containerd_config", "containerd_socket",
        "cni_conf_dir", "cni_data_dir", "kubelet_root", "kubelet_config", "runc_root",
        "pod_logs")}


def test_two_nodes_share_no_path_bridge_range_cgroup_or_name() -> None:
    nodes = config.node_identities(3)
    local = Path("/x/.local")
    for one, other in itertools.combinations(nodes, 2):
        assert not _paths(one.dirs(local)) & _paths(other.dirs(local))
        for attribute in ("name", "bridge", "cni_network", "client_cert", "serving_cert",
                          "containerd", "kubelet", "cgroup_root", "pods_cgroup", "ip"):
            assert getattr(one, attribute) != getattr(other, attribute), attribute
        assert not ipaddress.ip_network(one.pod_cidr).overlaps(
            ipaddress.ip_network(other.pod_cidr))
        # No node's pods' cgroup is inside another's: `down` of one kills only its own.
        assert not (one.pods_cgroup + "/").startswith(other.pods_cgroup + "/")
        assert not (other.pods_cgroup + "/").startswith(one.pods_cgroup + "/")
    for each in nodes:
        assert ipaddress.ip_network(each.pod_cidr).subnet_of(
            ipaddress.ip_network(config.CLUSTER_CIDR))
        assert not ipaddress.ip_network(each.pod_cidr).overlaps(
            ipaddress.ip_network(network.POD_CIDR))


def test_one_kube_proxy_serves_node_ports_on_every_node() -> None:
    proxy = config.kube_proxy_config(Path("/k"), 1, 2, tuple(config.node_identities(2)))
    assert proxy["nodePortAddresses"] == ["10.244.1.1/32", "10.244.2.1/32"]
    assert proxy["hostnameOverride"] == "realnode"


def test_node_count_is_refused_outside_the_pod_ranges() -> None:
    with pytest.raises(ValueError):
        config.node_identities(0)
    with pytest.raises(ValueError):
        NodeIdentity(255)
    assert [n.name for n in config.node_identities(2)] == ["realnode", "realnode-2"]


def test_node_directories_are_told_apart() -> None:
    assert [config.node_index(name) for name in (
        "realnode", "realnode-2", "realnode-12", "realnode-x", "realnode-1", "realnode2",
        "pki")] == [1, 2, 12, None, None, None, None]


def test_the_record_names_each_nodes_processes() -> None:
    assert node.process_names(1) == ["containerd", "kubelet", "kube-proxy"]
    assert node.process_names(2) == [
        "containerd", "kubelet", "containerd-2", "kubelet-2", "kube-proxy"]


def test_each_node_has_its_own_certificates_and_role_binding() -> None:
    specs = {spec.stem: spec for spec in node.cert_specs(config.node_identities(2))}
    assert set(specs) == {"realnode-client", "realnode-serving", "realnode-2-client",
                          "realnode-2-serving", "kube-proxy"}
    assert specs["realnode-2-client"].common_name == "system:node:realnode-2"
    assert specs["realnode-2-serving"].server_names == ("10.244.2.1", "realnode-2")
    binding = node.node_role_binding(NodeIdentity(2))
    assert binding.metadata.name == "localkube:node:realnode-2"
    assert binding.subjects[0].name == "system:node:realnode-2"


def test_node_count_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(cluster.NODES_VARIABLE, raising=False)
    assert cluster.requested_nodes() is None
    monkeypatch.setenv(cluster.NODES_VARIABLE, "2")
    assert cluster.requested_nodes() == 2
    for wrong in ("0", "two", "-1"):
        with pytest.raises(ValueError):
            cluster.requested_nodes(wrong)
    state = cluster.ClusterState.model_validate(
        {"server": "s", "host_ip": "h", "api_port": 1, "etcd_port": 2, "pids": {},
         "kubeconfig": "/k", "kubectl": "/c"})
    assert state.nodes == 1  # a record written before node counts


def _hierarchies(tmp_path: Path) -> list[Path]:
    hierarchies = [tmp_path / name for name in ("cpu", "memory", "pids")]
    for hierarchy in hierarchies:
        hierarchy.mkdir()
    return hierarchies


def test_cgroup_root_is_made_in_every_hierarchy_for_node_two_only(tmp_path: Path) -> None:
    hierarchies = _hierarchies(tmp_path)
    host.ensure_cgroup_root(NodeIdentity(1), tmp_path)
    assert [list(h.iterdir()) for h in hierarchies] == [[], [], []]
    host.ensure_cgroup_root(NodeIdentity(2), tmp_path)
    assert all((h / "mlcycle-2").is_dir() for h in hierarchies)


def test_a_nodes_pod_cgroups_are_its_own(tmp_path: Path) -> None:
    hierarchies = _hierarchies(tmp_path)
    for hierarchy in hierarchies:
        (hierarchy / "kubepods" / "besteffort" / "pod-a").mkdir(parents=True)
        (hierarchy / "mlcycle-2" / "kubepods" / "burstable" / "pod-b").mkdir(parents=True)
    first = host.pod_cgroups(NodeIdentity(1), tmp_path)
    second = host.pod_cgroups(NodeIdentity(2), tmp_path)
    assert not set(first) & set(second)
    assert all("mlcycle-2" not in path.parts for path in first)
    assert all("mlcycle-2" in path.parts for path in second)
    assert tmp_path / "memory" / "mlcycle-2" in second  # the root we made goes too
    assert second[-1].name == "mlcycle-2"  # deepest first: the root is removed last

    host.remove_pod_cgroups(NodeIdentity(2), tmp_path)
    assert all(not (h / "mlcycle-2").exists() for h in hierarchies)
    assert all((h / "kubepods" / "besteffort" / "pod-a").is_dir() for h in hierarchies)


def test_a_pod_cgroup_removed_during_the_walk_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kubelet removes a stopping pod's cgroups while `make down` walks them (a CI run
    failed in the final teardown with FileNotFoundError on one)."""
    for hierarchy in _hierarchies(tmp_path):
        (hierarchy / "kubepods" / "burstable" / "pod-a" / "container").mkdir(parents=True)
    vanished = tmp_path / "memory" / "kubepods" / "burstable" / "pod-a"
    real_scandir = os.scandir

    def scandir_of_a_removed_cgroup(path: Any) -> Any:
        if Path(path) == vanished:
            raise FileNotFoundError(2, "No such file or directory", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir_of_a_removed_cgroup)
    found = host.pod_cgroups(NodeIdentity(1), tmp_path)
    assert vanished in found  # listed by its parent; only its own listing failed
    assert tmp_path / "cpu" / "kubepods" / "burstable" / "pod-a" / "container" in found
