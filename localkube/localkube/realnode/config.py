"""The real node's settings as pure builders: containerd's config, the CNI network, the
KubeletConfiguration and the KubeProxyConfiguration. Each setting this machine needs says
why (see ../shared/docs/real-node.md for what failed without them)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NODE_NAME = "realnode"
BRIDGE = "mlcycle1"
POD_CIDR = "10.244.1.0/24"
# Every node's pod range: kube-proxy masquerades Service traffic from outside of it.
CLUSTER_CIDR = "10.244.0.0/16"
CLUSTER_DNS = "10.96.0.10"
CLUSTER_DOMAIN = "cluster.local"
CNI_NETWORK = "mlcycle-realnode"
CNI_BIN_DIR = Path("/usr/lib/cni")  # Debian's containernetworking-plugins
RUNC = Path("/usr/sbin/runc")


def node_ip(pod_cidr: str = POD_CIDR) -> str:
    """The node's address is its bridge's: the CNI gateway, the kubelet's listen address."""
    return str(next(ipaddress.ip_network(pod_cidr).hosts()))


@dataclass(frozen=True)
class NodeDirs:
    """Everything the real node writes, under `.local/realnode/`."""

    root: Path

    @property
    def containerd_root(self) -> Path:
        """Images and snapshots: kept from one start to the next, so imports are skipped."""
        return self.root / "containerd" / "root"

    @property
    def containerd_state(self) -> Path:
        return self.root / "containerd" / "state"

    @property
    def containerd_config(self) -> Path:
        return self.root / "containerd" / "config.toml"

    @property
    def containerd_socket(self) -> Path:
        return self.root / "containerd" / "containerd.sock"

    @property
    def cni_conf_dir(self) -> Path:
        return self.root / "cni" / "net.d"

    @property
    def cni_data_dir(self) -> Path:
        return self.root / "cni" / "networks"

    @property
    def kubelet_root(self) -> Path:
        return self.root / "kubelet"

    @property
    def kubelet_config(self) -> Path:
        return self.root / "kubelet-config.yaml"

    @property
    def kube_proxy_config(self) -> Path:
        return self.root / "kube-proxy-config.yaml"

    @property
    def fresh(self) -> tuple[Path, ...]:
        """What each start recreates (containerd's root is kept)."""
        return (self.containerd_state, self.root / "cni", self.kubelet_root)


def containerd_config(dirs: NodeDirs, sandbox_image: str) -> str:
    """containerd 1.6's config (version 2): its own root, state and socket, CRI on runc."""
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return f"""\
version = 2
root = "{dirs.containerd_root}"
state = "{dirs.containerd_state}"
# Nothing here uses them; they only log errors on this machine.
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "{dirs.containerd_socket}"

[metrics]
  address = ""

[{cri}]
  # No image can be pulled from registry.k8s.io: our pause, built here.
  sandbox_image = "{sandbox_image}"
  # Processes here lack CAP_SYS_RESOURCE, so the kubelet's oom_score_adj of -998 for a
  # sandbox is refused and runc fails with "can't get final child's PID from pipe: EOF".
  restrict_oom_score_adj = true
  # Pod network namespaces under our state directory, not /var/run/netns.
  netns_mounts_under_state_dir = true
  enable_selinux = false
  tolerate_missing_hugetlb_controller = true

  [{cri}.containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"

    # runc, not crun: crun 1.8 refuses this host's hybrid cgroups.
    [{cri}.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [{cri}.containerd.runtimes.runc.options]
        BinaryName = "{RUNC}"
        SystemdCgroup = false

  [{cri}.cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{dirs.cni_conf_dir}"
    max_conf_num = 1
"""


def cni_conflist(dirs: NodeDirs, pod_cidr: str = POD_CIDR) -> dict[str, Any]:
    """A bridge network with host-local addresses and portmap, on its own bridge and range.

    No masquerading: pods reach only this machine (the apiserver, MLflow, MinIO) and each
    other, which needs routing but no NAT, and so leaves no per-pod NAT chain behind."""
    return {
        "cniVersion": "1.0.0",
        "name": CNI_NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(dirs.cni_data_dir),
                    "ranges": [[{"subnet": pod_cidr, "gateway": node_ip(pod_cidr)}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


@dataclass(frozen=True)
class KubeletSettings:
    ca_file: Path
    cert_file: Path
    key_file: Path
    port: int
    healthz_port: int
    cpu: int


def kubelet_config(dirs: NodeDirs, settings: KubeletSettings) -> dict[str, Any]:
    address = node_ip()
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        # The apiserver reaches the kubelet (logs, exec) at the node's InternalIP, so the
        # kubelet listens on that very address (--node-ip), with a certificate our CA signed.
        "address": address,
        "port": settings.port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": settings.healthz_port,
        "tlsCertFile": str(settings.cert_file),
        "tlsPrivateKeyFile": str(settings.key_file),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(settings.ca_file)},
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{dirs.containerd_socket}",
        # No systemd here: cgroupfs, as containerd's runc (SystemdCgroup = false).
        "cgroupDriver": "cgroupfs",
        # This machine has cgroup v1 (hybrid), which kubelet 1.35+ refuses by default. v1 is
        # deprecated, not gone: memory and CPU limits are enforced, OOM kills are reported.
        "failCgroupV1": False,
        # Swap is off on our machines, but a developer's may have it on: start anyway (Pods
        # get no swap, the kubelet's default swap behaviour).
        "failSwapOn": False,
        "clusterDNS": [CLUSTER_DNS],
        "clusterDomain": CLUSTER_DOMAIN,
        "resolvConf": "/etc/resolv.conf",
        # A shared development machine: evict only when really out of room, never GC images
        # (they are built here and cannot be pulled back).
        "evictionHard": {
            "memory.available": "100Mi", "nodefs.available": "1%",
            "nodefs.inodesFree": "1%", "imagefs.available": "1%",
        },
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "maxPods": 50,
        "serializeImagePulls": False,
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "volumePluginDir": str(dirs.kubelet_root / "volume-plugins"),
        "nodeStatusReportFrequency": "10s",
        "nodeStatusUpdateFrequency": "5s",
        "shutdownGracePeriod": "0s",
        "systemReserved": {"cpu": "100m", "memory": "256Mi"},
        "enforceNodeAllocatable": ["pods"],
    }


def kubelet_args(dirs: NodeDirs, kubeconfig: Path) -> list[str]:
    return [
        f"--config={dirs.kubelet_config}",
        f"--kubeconfig={kubeconfig}",
        f"--root-dir={dirs.kubelet_root}",
        f"--cert-dir={dirs.kubelet_root / 'pki'}",
        f"--hostname-override={NODE_NAME}",
        f"--node-ip={node_ip()}",
        "--v=1",
    ]


def kube_proxy_config(kubeconfig: Path, healthz_port: int, metrics_port: int) -> dict[str, Any]:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        # iptables, so that Service ClusterIPs route from this host and from Pods.
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": NODE_NAME,
        "clusterCIDR": CLUSTER_CIDR,
        "bindAddress": node_ip(),
        "healthzBindAddress": f"127.0.0.1:{healthz_port}",
        "metricsBindAddress": f"127.0.0.1:{metrics_port}",
        # Leave the host's conntrack sysctls and route_localnet as they are.
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s",
                      "tcpCloseWaitTimeout": "0s"},
        "iptables": {"localhostNodePorts": False, "masqueradeAll": False},
        "nodePortAddresses": [f"{node_ip()}/32"],
    }
