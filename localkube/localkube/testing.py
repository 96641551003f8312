"""Helpers for tests against the local cluster: namespaces that are really gone afterwards,
and waits that say what they were waiting for when they time out."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from localkube.readiness import api_client, wait_for_default_service_account

T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 60,
             interval: float = 0.25) -> T:
    """Call probe until it returns something truthy; fail naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def create_namespace(kubeconfig: Path, prefix: str = "t") -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(api_client(kubeconfig))
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    wait_for_default_service_account(kubeconfig, name, timeout=60)
    return name


def delete_namespace(kubeconfig: Path, name: str, timeout: float = 180, *,
                     until_gone: bool = True) -> None:
    """Delete the namespace and wait until it is gone (the namespace controller and
    the kubelet must both do their part), or with `until_gone=False` only until its Pods
    are: while Pods run, the namespace controller looks again only after half their
    grace period, so the namespace itself lingered 10 to 20 s after its last Pod. A test's
    namespace with a unique name costs nothing in that time."""
    core = client.CoreV1Api(api_client(kubeconfig))
    try:
        core.delete_namespace(name)
    except ApiException as error:
        if error.status == 404:
            return
        raise

    def gone() -> bool:
        try:
            core.read_namespace(name)
        except ApiException as error:
            return bool(error.status == 404)
        return False

    def no_pods() -> bool:
        return not core.list_namespaced_pod(name).items

    what = f"namespace {name}" if until_gone else f"the pods of namespace {name}"
    wait_for(f"{what} to be deleted", gone if until_gone else no_pods, timeout=timeout,
             interval=0.5)
