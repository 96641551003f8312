"""Dynamic provisioning on the local cluster: the default StorageClass and its provisioner.

The cluster's own PersistentVolume controller (in kube-controller-manager) does the
binding, and the kubelet mounts the volume; this is the external-provisioner half, as
small as it can be: a claim of our StorageClass that waits for a volume gets a hostPath
PersistentVolume, pre-bound to it (`claimRef`), whose directory lives under `.local/volumes/`.
When a claim is deleted and its volume's reclaim policy is Delete, the directory and the
volume go too; with Retain both stay, as on any cluster.

`python -m localkube.provisioner --kubeconfig K --root DIR --node NAME` runs it (a process
of `make up`).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from localkube.readiness import api_client

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
    """A hostPath PersistentVolume pre-bound to the claim, pinned to the node."""
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
    def __init__(self, api: client.ApiClient, root: Path, node_name: str) -> None:
        self.api = api
        self.core = client.CoreV1Api(api)
        self.storage = client.StorageV1Api(api)
        self.root = root
        self.node_name = node_name

    def _json(self, listed: Any) -> list[JSON]:
        items: list[JSON] = self.api.sanitize_for_serialization(listed).get("items") or []
        return items

    def ensure_storage_class(self) -> None:
        try:
            self.storage.create_storage_class(build_storage_class())
            log.info("Created default StorageClass %s", STORAGE_CLASS)
        except ApiException as error:
            if error.status != 409:
                raise

    def sync_once(self) -> None:
        claims = self._json(self.core.list_persistent_volume_claim_for_all_namespaces())
        volumes = self._json(self.core.list_persistent_volume())
        existing = {v["metadata"]["name"] for v in volumes}
        for claim in claims:
            if wants_volume(claim) and volume_name(claim) not in existing:
                self.provision(claim)
        for volume in volumes:
            if is_released_for_deletion(volume):
                self.delete(volume)

    def provision(self, claim: JSON) -> None:
        directory = self.root / volume_name(claim)
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o777)  # any pod user may write, as local-path provisioners do
        policy = self.storage.read_storage_class(STORAGE_CLASS).reclaim_policy or "Delete"
        volume = build_volume(claim, directory, self.node_name, policy)
        try:
            self.core.create_persistent_volume(volume)
        except ApiException as error:
            if error.status != 409:
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
            self.core.delete_persistent_volume(name)
        except ApiException as error:
            if error.status != 404:
                raise
        log.info("Deleted released PersistentVolume %s and its data", name)

    def run(self) -> None:
        """Poll claims and volumes once a second, until killed."""
        while True:
            try:
                self.ensure_storage_class()
                break
            except (ApiException, HTTPError) as error:
                log.warning("Could not create StorageClass %s: %s", STORAGE_CLASS, error)
                time.sleep(2)
        while True:
            time.sleep(POLL_SECONDS)
            try:
                self.sync_once()
            except (ApiException, HTTPError, OSError) as error:
                log.warning("Provisioning failed (%s); trying again", error)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m localkube.provisioner", description=__doc__)
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--node", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    args.root.mkdir(parents=True, exist_ok=True)
    Provisioner(api_client(args.kubeconfig), args.root, args.node).run()


if __name__ == "__main__":
    main()
