"""The real node's settings (localkube.realnode.config, .dns): pure builders, checked
without starting anything."""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path

from localkube import network
from localkube.realnode import config, dns
from localkube.realnode.config import KubeletSettings, NodeDirs

DIRS = NodeDirs(Path("/x/.local/realnode"))


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
    assert config.node_ip() == bridge["ipam"]["ranges"][0][0]["gateway"] == "10.244.1.1"


def test_kubelet_config() -> None:
    settings = KubeletSettings(Path("/ca.crt"), Path("/s.crt"), Path("/s.key"), 10250, 10248, 2)
    kubelet = config.kubelet_config(DIRS, settings)
    assert kubelet["cgroupDriver"] == "cgroupfs"
    assert kubelet["failCgroupV1"] is False
    assert kubelet["failSwapOn"] is False
    assert kubelet["address"] == config.node_ip()
    assert kubelet["containerRuntimeEndpoint"] == f"unix://{DIRS.containerd_socket}"
    assert kubelet["clusterDNS"] == [config.CLUSTER_DNS]
    assert kubelet["authentication"]["anonymous"]["enabled"] is False
    args = config.kubelet_args(DIRS, Path("/k"))
    assert not any(arg.startswith("--register-with-taints") for arg in args)
    assert f"--node-ip={config.node_ip()}" in args


def test_kube_proxy_runs_iptables_mode() -> None:
    proxy = config.kube_proxy_config(Path("/k"), 1, 2)
    assert proxy["mode"] == "iptables"
    assert proxy["hostnameOverride"] == config.NODE_NAME
    assert ipaddress.ip_network(config.POD_CIDR).subnet_of(
        ipaddress.ip_network(proxy["clusterCIDR"]))


def test_coredns_serves_the_cluster_dns_address_from_the_real_node() -> None:
    manifests = {m["kind"]: m for m in dns.build_manifests("img:1")}
    assert manifests["Service"]["spec"]["clusterIP"] == config.CLUSTER_DNS
    pod = manifests["Deployment"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["securityContext"]["runAsNonRoot"] is True
    assert container["imagePullPolicy"] == "Never"
    assert f".:{dns.PORT}" in manifests["ConfigMap"]["data"]["Corefile"]
