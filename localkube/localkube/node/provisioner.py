"""Dynamic provisioning on the local node: the default StorageClass and its provisioner.

The cluster's own PersistentVolume controller (in kube-controller-manager) does the
binding; this is the external-provisioner half, as small as it can be: a claim of our
StorageClass that waits for a volume gets a hostPath PersistentVolume, pre-bound to it
(`claimRef`), whose directory lives under the node's state directory. When a claim is
deleted and its volume's reclaim policy is Delete, the directory and the volume go too;
with Retain both stay, as on any cluster.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from pathlib import Path
from typing import Any

from .kube import Kube, KubeError

log = logging.getLogger(__name__)

JSON = dict[str, Any]
PROVISIONER = "localkube.dev/hostpath"
STORAGE_CLASS = "localkube-hostpath"
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
POLL_SECONDS = 1.0


def build_storage_class() -> JSON:
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": STORAGE_CLASS,
            "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
        },
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
    }


def volume_name(claim: JSON) -> str:
    return f"pvc-{claim['metadata']['uid']}"


def wants_volume(claim: JSON) -> bool:
    """A claim of our class that is waiting for a volume."""
    spec = claim.get("spec") or {}
    pending = (claim.get("status") or {}).get("phase", "Pending") == "Pending"
    unbound = not spec.get("volumeName") and not (claim["metadata"].get("deletionTimestamp"))
    return pending and unbound and spec.get("storageClassName") == STORAGE_CLASS


def build_volume(claim: JSON, directory: Path, node_name: str, reclaim_policy: str) -> JSON:
    """A hostPath PersistentVolume pre-bound to the claim, pinned to this node."""
    metadata, spec = claim["metadata"], claim.get("spec") or {}
    storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": volume_name(claim), "annotations": {PROVISIONED_BY: PROVISIONER}},
        "spec": {
            "capacity": {"storage": storage},
            "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
            "volumeMode": spec.get("volumeMode") or "Filesystem",
            "persistentVolumeReclaimPolicy": reclaim_policy,
            "storageClassName": STORAGE_CLASS,
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": metadata["namespace"],
                "name": metadata["name"],
                "uid": metadata["uid"],
            },
            "hostPath": {"path": str(directory), "type": "Directory"},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [node_name]}
            ]}]}},
        },
    }


def is_released_for_deletion(volume: JSON) -> bool:
    """One of our volumes whose claim is gone and whose policy says delete it."""
    annotations = volume["metadata"].get("annotations") or {}
    spec = volume.get("spec") or {}
    return (
        annotations.get(PROVISIONED_BY) == PROVISIONER
        and (volume.get("status") or {}).get("phase") == "Released"
        and spec.get("persistentVolumeReclaimPolicy") == "Delete"
    )


class Provisioner:
    """Polls claims and volumes once a second; a thread of the node agent."""

    def __init__(self, kube: Kube, root: Path, node_name: str, stop: threading.Event) -> None:
        self.kube = kube
        self.root = root
        self.node_name = node_name
        self.stop = stop

    def start(self) -> None:
        threading.Thread(target=self._run, name="provisioner", daemon=True).start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                self.ensure_storage_class()
                break
            except KubeError as exc:
                log.warning("Could not create StorageClass %s: %s", STORAGE_CLASS, exc)
                self.stop.wait(2.0)
        while not self.stop.wait(POLL_SECONDS):
            try:
                self.sync_once()
            except KubeError as exc:
                log.warning("Provisioning failed (%s); trying again", exc)
            except OSError as exc:
                log.warning("Provisioning failed on the host (%s); trying again", exc)

    def ensure_storage_class(self) -> None:
        try:
            self.kube.request("POST", "/apis/storage.k8s.io/v1/storageclasses",
                              body=build_storage_class())
            log.info("Created default StorageClass %s", STORAGE_CLASS)
        except KubeError as exc:
            if exc.status != 409:
                raise

    def sync_once(self) -> None:
        claims = self.kube.get("/api/v1/persistentvolumeclaims").get("items") or []
        volumes = self.kube.get("/api/v1/persistentvolumes").get("items") or []
        existing = {v["metadata"]["name"] for v in volumes}
        for claim in claims:
            if wants_volume(claim) and volume_name(claim) not in existing:
                self.provision(claim)
        for volume in volumes:
            if is_released_for_deletion(volume):
                self.delete(volume)

    def _reclaim_policy(self) -> str:
        found = self.kube.get_or_none(f"/apis/storage.k8s.io/v1/storageclasses/{STORAGE_CLASS}")
        return str((found or {}).get("reclaimPolicy") or "Delete")

    def provision(self, claim: JSON) -> None:
        directory = self.root / volume_name(claim)
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o777)  # any pod user may write, as local-path provisioners do
        volume = build_volume(claim, directory, self.node_name, self._reclaim_policy())
        try:
            self.kube.request("POST", "/api/v1/persistentvolumes", body=volume)
        except KubeError as exc:
            if exc.status != 409:
                raise
        log.info("Provisioned PersistentVolume %s for claim %s/%s at %s",
                 volume["metadata"]["name"], claim["metadata"]["namespace"],
                 claim["metadata"]["name"], directory)

    def delete(self, volume: JSON) -> None:
        name = volume["metadata"]["name"]
        directory = Path(volume["spec"]["hostPath"]["path"])
        if directory.parent == self.root:  # never remove anything outside our own root
            shutil.rmtree(directory, ignore_errors=True)
        try:
            self.kube.request("DELETE", f"/api/v1/persistentvolumes/{name}")
        except KubeError as exc:
            if exc.status != 404:
                raise
        log.info("Deleted released PersistentVolume %s and its data", name)
