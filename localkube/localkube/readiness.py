"""Waits on cluster state through the API: the node Ready and schedulable, namespaces usable."""

from __future__ import annotations

import time
from pathlib import Path

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from localkube import processes

NOT_READY_TAINT = "node.kubernetes.io/not-ready"


def api_client(kubeconfig: Path) -> client.ApiClient:
    return config.new_client_from_config(config_file=str(kubeconfig))


def wait_for_node(kubeconfig: Path, node_name: str, kubelet_pid: int, kubelet_log: Path,
                  timeout: float) -> None:
    """Until the Node is Ready and the not-ready taint is gone, so Pods can schedule."""
    core = client.CoreV1Api(api_client(kubeconfig))
    deadline = time.monotonic() + timeout
    seen = "not registered"
    while time.monotonic() < deadline:
        if not processes.alive(kubelet_pid):
            raise RuntimeError(
                f"The kubelet exited. Last log lines:\n{processes.log_tail(kubelet_log)}"
            )
        try:
            node = core.read_node(node_name)
        except ApiException as error:
            if error.status != 404:
                raise
        else:
            ready = any(c.type == "Ready" and c.status == "True"
                        for c in node.status.conditions or [])
            tainted = any(t.key == NOT_READY_TAINT for t in node.spec.taints or [])
            if ready and not tainted:
                return
            seen = f"ready={ready}, not-ready taint={tainted}"
        time.sleep(0.5)
    raise RuntimeError(f"Node {node_name} not schedulable within {timeout:.0f} s ({seen})")


def wait_for_default_service_account(kubeconfig: Path, namespace: str, timeout: float) -> None:
    """Pods can be created in a namespace only once its `default` ServiceAccount exists."""
    core = client.CoreV1Api(api_client(kubeconfig))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            core.read_namespaced_service_account("default", namespace)
            return
        except ApiException as error:
            if error.status != 404:
                raise
        time.sleep(0.2)
    raise RuntimeError(f"ServiceAccount {namespace}/default not created within {timeout:.0f} s")
