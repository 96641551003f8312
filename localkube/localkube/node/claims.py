"""PersistentVolumeClaim volumes: from a pod's claim to the directory of its bound volume.

The volume must be bound (the kube-controller-manager binds claims to volumes; the
node's provisioner creates hostPath volumes for its StorageClass). Supported volume
sources are `hostPath` and `local`: both are directories on this machine.
"""

from __future__ import annotations

import os
from typing import Any, Protocol

JSON = dict[str, Any]


class ClaimError(Exception):
    """The claim cannot be mounted (yet): missing, unbound, or an unsupported volume."""


class ClaimLookups(Protocol):
    """Reads claims and volumes; returns None when the object does not exist."""

    def get_persistent_volume_claim(self, namespace: str, name: str) -> JSON | None: ...

    def get_persistent_volume(self, name: str) -> JSON | None: ...


def volume_directory(volume: JSON) -> str | None:
    """The host directory of a PersistentVolume, for the sources this node can mount."""
    spec = volume.get("spec") or {}
    for source in ("hostPath", "local"):
        path = (spec.get(source) or {}).get("path")
        if path:
            return str(path)
    return None


def claim_directory(namespace: str, pod_volume: JSON, lookups: ClaimLookups) -> str:
    """The directory to mount for a pod volume `{persistentVolumeClaim: {claimName}}`."""
    name = str((pod_volume.get("persistentVolumeClaim") or {}).get("claimName", ""))
    claim = lookups.get_persistent_volume_claim(namespace, name)
    if claim is None:
        raise ClaimError(f'persistentvolumeclaim "{name}" not found')
    volume_name = (claim.get("spec") or {}).get("volumeName")
    if (claim.get("status") or {}).get("phase") != "Bound" or not volume_name:
        raise ClaimError(f'persistentvolumeclaim "{name}" is not bound')
    volume = lookups.get_persistent_volume(str(volume_name))
    if volume is None:
        raise ClaimError(f'persistentvolume "{volume_name}" of claim "{name}" not found')
    directory = volume_directory(volume)
    if directory is None:
        raise ClaimError(
            f'persistentvolume "{volume_name}" has no hostPath or local source '
            "(the only kinds the localkube node mounts)"
        )
    if not os.path.isdir(directory):
        raise ClaimError(f'persistentvolume "{volume_name}": {directory} is not a directory')
    return directory
