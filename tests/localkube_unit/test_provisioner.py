"""The volume provisioner's pure decisions (no cluster; the end-to-end chart test runs it
for real, and the kubelet mounts what it makes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from localkube import provisioner

JSON = dict[str, Any]


def claim(phase: str = "Pending", storage_class: str = provisioner.STORAGE_CLASS,
          volume_name: str | None = None) -> JSON:
    spec: JSON = {"storageClassName": storage_class, "accessModes": ["ReadWriteOnce"],
                  "resources": {"requests": {"storage": "2Gi"}}}
    if volume_name:
        spec["volumeName"] = volume_name
    return {"metadata": {"name": "data", "namespace": "ns", "uid": "u-1"}, "spec": spec,
            "status": {"phase": phase}}


def test_the_default_storage_class_is_ours() -> None:
    storage_class = provisioner.build_storage_class()
    assert storage_class["metadata"]["annotations"] == {
        "storageclass.kubernetes.io/is-default-class": "true"}
    assert storage_class["provisioner"] == provisioner.PROVISIONER


@pytest.mark.parametrize(("candidate", "wanted"), [
    (claim(), True),
    (claim(storage_class="other"), False),
    (claim(phase="Bound", volume_name="pvc-u-1"), False),
])
def test_only_pending_claims_of_our_class_get_a_volume(candidate: JSON, wanted: bool) -> None:
    assert provisioner.wants_volume(candidate) is wanted


def test_a_volume_is_pre_bound_to_its_claim_and_pinned_to_the_node(tmp_path: Path) -> None:
    volume = provisioner.build_volume(claim(), tmp_path / "pvc-u-1", "realnode", "Delete")
    spec = volume["spec"]
    assert volume["metadata"]["name"] == "pvc-u-1"
    assert spec["claimRef"] == {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                "namespace": "ns", "name": "data", "uid": "u-1"}
    assert spec["capacity"] == {"storage": "2Gi"} and spec["hostPath"]["path"].endswith("pvc-u-1")
    terms = spec["nodeAffinity"]["required"]["nodeSelectorTerms"]
    assert terms[0]["matchExpressions"][0]["values"] == ["realnode"]
    released = {**volume, "status": {"phase": "Released"}}
    assert provisioner.is_released_for_deletion(released)
    retained = {**released, "spec": {**spec, "persistentVolumeReclaimPolicy": "Retain"}}
    assert not provisioner.is_released_for_deletion(retained)
