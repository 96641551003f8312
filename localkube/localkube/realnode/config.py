"""The real nodes' settings as pure builders: each node's identity, containerd's config, the
CNI network, the KubeletConfiguration and the KubeProxyConfiguration. Each setting this
machine needs says why (see ../shared/docs/real-node.md for what failed without them).

`make up NODES=N` runs N nodes on this one machine, each its own containerd and kubelet with
its own state. Node 1 keeps the names, paths and addresses of the single node before it."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NODE_NAME = "realnode"  # node 1's; node N's is `realnode-N`
# 10.244.0.0/24 is the host's own bridge (localkube.network); node N has 10.244.N.0/24.
MAX_NODES = 254
# Every node's pod range: kube-proxy masquerades Service traffic from outside of it.
CLUSTER_CIDR = "10.244.0.0/16"
CLUSTER_DNS = "10.96.0.10"
CLUSTER_DOMAIN = "cluster.local"
CNI_NETWORK = "mlcycle-realnode"
CNI_BIN_DIR = Path("/usr/lib/cni")  # Debian's containernetworking-plugins
RUNC = Path("/usr/sbin/runc")


@dataclass(frozen=True)
class NodeIdentity:
    """Everything that tells node `index` (from 1) apart from the others on this machine.

    The nodes share the host's network namespace: each has its own bridge and pod range, and
    pods on one bridge reach the other bridge and the host through the host's routing (every
    bridge's range is a connected route here), with no overlay and no NAT."""

    index: int

    def __post_init__(self) -> None:
        if not 1 <= self.index <= MAX_NODES:
            raise ValueError(f"node index {self.index} is outside 1..{MAX_NODES} "
                             "(node N's pod range is 10.244.N.0/24)")

    @property
    def is_first(self) -> bool:
        return self.index == 1

    def _suffixed(self, base: str) -> str:
        return base if self.is_first else f"{base}-{self.index}"

    @property
    def name(self) -> str:
        return self._suffixed(NODE_NAME)

    @property
    def bridge(self) -> str:
        return f"mlcycle{self.index}"

    @property
    def pod_cidr(self) -> str:
        return f"10.244.{self.index}.0/24"

    @property
    def ip(self) -> str:
        """The node's address is its bridge's: the CNI gateway, the kubelet's listen address."""
        return str(next(ipaddress.ip_network(self.pod_cidr).hosts()))

    @property
    def cni_network(self) -> str:
        return self._suffixed(CNI_NETWORK)

    @property
    def cni_conf_file(self) -> str:
        return f"10-{self.cni_network}.conflist"

    @property
    def client_cert(self) -> str:
        """The kubelet's client certificate (and its kubeconfig's user)."""
        return f"{self.name}-client"

    @property
    def serving_cert(self) -> str:
        return f"{self.name}-serving"

    @property
    def cgroup_root(self) -> str | None:
        """The kubelet's `cgroupRoot`; None for node 1, which keeps the default (`/`).

        With the cgroupfs driver a kubelet puts every pod under `<cgroupRoot>/kubepods` and
        treats all it finds there as its own: two kubelets on one host need two roots."""
        return None if self.is_first else f"/mlcycle-{self.index}"

    @property
    def pods_cgroup(self) -> str:
        """The kubelet's cgroup for every pod, relative to each hierarchy's mount point."""
        return "/".join(part for part in ((self.cgroup_root or "").strip("/"), "kubepods")
                        if part)

    @property
    def containerd(self) -> str:
        """The process names in the cluster's record (`.local/cluster.json`)."""
        return self._suffixed("containerd")

    @property
    def kubelet(self) -> str:
        return self._suffixed("kubelet")

    def dirs(self, local_root: Path) -> NodeDirs:
        """Its state under `.local/realnode/` (node 1) or `.local/realnode-N/`."""
        return NodeDirs(local_root / self.name)


FIRST_NODE = NodeIdentity(1)


def node_identities(count: int) -> list[NodeIdentity]:
    if not 1 <= count <= MAX_NODES:
        raise ValueError(f"a node count of {count}: it must be within 1..{MAX_NODES}")
    return [NodeIdentity(index) for index in range(1, count + 1)]


def node_index(dir_name: str) -> int | None:
    """Which node a directory under `.local/` belongs to (`realnode-2` -> 2), if any: `down`
    finds nodes a lost record no longer names."""
    if dir_name == NODE_NAME:
        return 1
    prefix = f"{NODE_NAME}-"
    suffix = dir_name.removeprefix(prefix)
    if dir_name.startswith(prefix) and suffix.isdigit() and 2 <= int(suffix) <= MAX_NODES:
        return int(suffix)
    return None


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
    def runc_root(self) -> Path:
        """runc's state for a node other than the first (node 1 keeps runc's default)."""
        return self.containerd_state / "runc"

    @property
    def pod_logs(self) -> Path:
        """Pod logs for a node other than the first (node 1 keeps `/var/log/pods`)."""
        return self.root / "pod-logs"

    @property
    def fresh(self) -> tuple[Path, ...]:
        """What each start recreates (containerd's root is kept)."""
        return (self.containerd_state, self.root / "cni", self.kubelet_root)


def containerd_config(dirs: NodeDirs, sandbox_image: str,
                      node: NodeIdentity = FIRST_NODE) -> str:
    """containerd 1.6's config (version 2): its own root, state and socket, CRI on runc."""
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    # runc keeps every container's state under one root (/run/containerd/runc by default):
    # a second node's containerd gets its own, so that no two runtimes share a directory.
    runc_root = "" if node.is_first else f'\n        Root = "{dirs.runc_root}"'
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
        SystemdCgroup = false{runc_root}

  [{cri}.cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{dirs.cni_conf_dir}"
    max_conf_num = 1
"""


def cni_conflist(dirs: NodeDirs, node: NodeIdentity = FIRST_NODE) -> dict[str, Any]:
    """A bridge network with host-local addresses and portmap, on the node's bridge and range.

    No masquerading: pods reach only this machine (the apiserver, MLflow, MinIO) and each
    other, which needs routing but no NAT, and so leaves no per-pod NAT chain behind. A pod
    on another node's bridge is one hop away: both bridges are the host's, so the host routes
    between them (its default route is the bridge's address, `isGateway`)."""
    return {
        "cniVersion": "1.0.0",
        "name": node.cni_network,
        "plugins": [
            {
                "type": "bridge",
                "bridge": node.bridge,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "dataDir": str(dirs.cni_data_dir),
                    "ranges": [[{"subnet": node.pod_cidr, "gateway": node.ip}]],
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


def kubelet_config(dirs: NodeDirs, settings: KubeletSettings,
                   node: NodeIdentity = FIRST_NODE) -> dict[str, Any]:
    address = node.ip
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
        # A crashed container starts again after at most 1 s, not after a back-off doubling
        # from 10 s to 5 min: the fault-injection tests SIGKILL the chart's operator at 20-odd
        # points in a row (KubeletCrashLoopBackOffMax, beta and on since 1.35).
        "crashLoopBackOff": {"maxContainerRestartPeriod": "1s"},
        "systemReserved": {"cpu": "100m", "memory": "256Mi"},
        "enforceNodeAllocatable": ["pods"],
        **({} if node.is_first else _beside_the_first(dirs, node)),
    }


def _beside_the_first(dirs: NodeDirs, node: NodeIdentity) -> dict[str, Any]:
    """What a second kubelet on this host must not share with the first."""
    return {
        # The pods' cgroups (cgroupfs driver): `<cgroupRoot>/kubepods`. The kubelet refuses
        # to start unless this root exists in every cgroup v1 hierarchy it uses
        # (host.ensure_cgroup_root makes it).
        "cgroupRoot": node.cgroup_root,
        # The kubelet's garbage collector deletes every directory here whose pod it does not
        # run: under the shared /var/log/pods it would delete the other node's pods' logs.
        "podLogsDir": str(dirs.pod_logs),
    }


def kubelet_args(dirs: NodeDirs, kubeconfig: Path,
                 node: NodeIdentity = FIRST_NODE) -> list[str]:
    return [
        f"--config={dirs.kubelet_config}",
        f"--kubeconfig={kubeconfig}",
        f"--root-dir={dirs.kubelet_root}",
        f"--cert-dir={dirs.kubelet_root / 'pki'}",
        f"--hostname-override={node.name}",
        f"--node-ip={node.ip}",
        "--v=1",
    ]


def kube_proxy_config(kubeconfig: Path, healthz_port: int, metrics_port: int,
                      nodes: tuple[NodeIdentity, ...] = (FIRST_NODE,)) -> dict[str, Any]:
    """One kube-proxy for the whole host, however many nodes: every node shares the host's
    network namespace and iptables, so a second kube-proxy would write the very same rules.
    It runs as node 1 (whose Node it reads), and NodePorts answer on every node's address."""
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        # iptables, so that Service ClusterIPs route from this host and from Pods.
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": NODE_NAME,
        "clusterCIDR": CLUSTER_CIDR,
        "bindAddress": FIRST_NODE.ip,
        "healthzBindAddress": f"127.0.0.1:{healthz_port}",
        "metricsBindAddress": f"127.0.0.1:{metrics_port}",
        # Leave the host's conntrack sysctls and route_localnet as they are.
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s",
                      "tcpCloseWaitTimeout": "0s"},
        "iptables": {"localhostNodePorts": False, "masqueradeAll": False},
        "nodePortAddresses": [f"{node.ip}/32" for node in nodes],
    }
