"""Pod volumes on the host: emptyDir, hostPath, and file volumes written atomically.

configMap, secret, downwardAPI and projected volumes are rendered to a payload
(relative path -> bytes and mode) by pure functions, then written the kubelet's way:
files in a timestamped directory, a `..data` symlink swapped atomically and
top-level symlinks into it, so refreshes are atomic for readers.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .claims import ClaimError, ClaimLookups, claim_directory
from .env import ConfigError, Lookups, decode_secret_data, expand, field_value, resource_value
from .runtime import Mount

log = logging.getLogger(__name__)

JSON = dict[str, Any]
DEFAULT_MODE = 0o644
FILE_VOLUME_TYPES = ("configMap", "secret", "downwardAPI", "projected")
UNSUPPORTED_HINT = (
    "supported: emptyDir, hostPath, persistentVolumeClaim, configMap, secret, downwardAPI, "
    "projected"
)


class VolumeError(Exception):
    """A volume cannot be set up (kubelet event `FailedMount`); retried."""


class VolumeLookups(Lookups, ClaimLookups, Protocol):
    """Everything volumes read from the API: Secrets, ConfigMaps, claims and volumes."""


@dataclass(frozen=True)
class FileEntry:
    data: bytes
    mode: int


# (audience or None, expirationSeconds) -> token
TokenFn = Callable[[str | None, int], str]


def _check_relative(path: str) -> str:
    parts = path.split("/")
    if not path or path.startswith("/") or ".." in parts or any(p.startswith("..") for p in parts):
        raise VolumeError(f"invalid path {path!r} in volume")
    return path


def config_map_payload(obj: JSON) -> dict[str, bytes]:
    out = {k: str(v).encode() for k, v in (obj.get("data") or {}).items()}
    out.update({k: base64.b64decode(v) for k, v in (obj.get("binaryData") or {}).items()})
    return out


def key_files(
    values: Mapping[str, bytes],
    items: list[JSON] | None,
    default_mode: int,
    missing_key: str,
) -> dict[str, FileEntry]:
    """Files from keys, or from `items` (key -> path, optional mode)."""
    if not items:
        return {_check_relative(k): FileEntry(v, default_mode) for k, v in values.items()}
    out = {}
    for item in items:
        key = item.get("key", "")
        if key not in values:
            raise VolumeError(f"{missing_key}: {key}")
        mode = item.get("mode")
        out[_check_relative(item.get("path") or key)] = FileEntry(
            values[key], default_mode if mode is None else int(mode)
        )
    return out


def _config_map_files(
    namespace: str, src: JSON, lookups: Lookups, default_mode: int
) -> dict[str, FileEntry]:
    name = src.get("name", "")
    obj = lookups.get_config_map(namespace, name)
    if obj is None:
        if src.get("optional"):
            return {}
        raise VolumeError(f'configmap "{name}" not found')
    return key_files(
        config_map_payload(obj),
        src.get("items"),
        default_mode,
        "configmap references non-existent config key",
    )


def _secret_files(
    namespace: str, name: str, src: JSON, lookups: Lookups, default_mode: int
) -> dict[str, FileEntry]:
    obj = lookups.get_secret(namespace, name)
    if obj is None:
        if src.get("optional"):
            return {}
        raise VolumeError(f'secret "{name}" not found')
    return key_files(
        decode_secret_data(obj),
        src.get("items"),
        default_mode,
        "references non-existent secret key",
    )


def downward_files(
    pod: JSON, items: list[JSON], default_mode: int, node_allocatable: Mapping[str, str]
) -> dict[str, FileEntry]:
    out = {}
    for item in items:
        try:
            if "fieldRef" in item:
                value = field_value(pod, (item["fieldRef"] or {}).get("fieldPath", ""))
            elif "resourceFieldRef" in item:
                ref = item["resourceFieldRef"] or {}
                divisor = None if ref.get("divisor") is None else str(ref["divisor"])
                value = resource_value(
                    pod,
                    ref.get("containerName", ""),
                    ref.get("resource", ""),
                    divisor,
                    node_allocatable,
                )
            else:
                continue
        except ConfigError as exc:
            raise VolumeError(str(exc)) from exc
        mode = item.get("mode")
        out[_check_relative(item.get("path", ""))] = FileEntry(
            value.encode(), default_mode if mode is None else int(mode)
        )
    return out


def volume_payload(
    pod: JSON,
    volume: JSON,
    lookups: Lookups,
    token: TokenFn,
    node_allocatable: Mapping[str, str],
) -> dict[str, FileEntry]:
    """Files of a configMap/secret/downwardAPI/projected volume."""
    namespace = (pod.get("metadata") or {}).get("namespace", "default")
    if "configMap" in volume:
        src = volume["configMap"] or {}
        mode = src.get("defaultMode", DEFAULT_MODE)
        return _config_map_files(namespace, src, lookups, mode)
    if "secret" in volume:
        src = volume["secret"] or {}
        mode = src.get("defaultMode", DEFAULT_MODE)
        return _secret_files(namespace, src.get("secretName", ""), src, lookups, mode)
    if "downwardAPI" in volume:
        src = volume["downwardAPI"] or {}
        mode = src.get("defaultMode", DEFAULT_MODE)
        return downward_files(pod, src.get("items") or [], mode, node_allocatable)
    src = volume.get("projected") or {}
    mode = src.get("defaultMode", DEFAULT_MODE)
    out: dict[str, FileEntry] = {}
    for source in src.get("sources") or []:
        if "serviceAccountToken" in source:
            sat = source["serviceAccountToken"] or {}
            text = token(sat.get("audience") or None, int(sat.get("expirationSeconds") or 3600))
            out[_check_relative(sat.get("path", "token"))] = FileEntry(text.encode(), mode)
        elif "configMap" in source:
            out.update(_config_map_files(namespace, source["configMap"] or {}, lookups, mode))
        elif "secret" in source:
            sec = source["secret"] or {}
            out.update(_secret_files(namespace, sec.get("name", ""), sec, lookups, mode))
        elif "downwardAPI" in source:
            items = (source["downwardAPI"] or {}).get("items") or []
            out.update(downward_files(pod, items, mode, node_allocatable))
        else:
            raise VolumeError(f"unsupported projected volume source {sorted(source)}")
    return out


def _current_payload(target: Path) -> dict[str, FileEntry] | None:
    data = target / "..data"
    if not data.is_dir():
        return None
    out = {}
    for path in data.rglob("*"):
        if path.is_file():
            out[str(path.relative_to(data))] = FileEntry(
                path.read_bytes(), path.stat().st_mode & 0o7777
            )
    return out


def write_payload(target: Path, files: Mapping[str, FileEntry], fs_group: int | None) -> bool:
    """Atomically make `target` hold exactly `files`; False when nothing changed."""
    target.mkdir(parents=True, exist_ok=True)
    os.chmod(target, 0o755 if fs_group is None else 0o775)
    if _current_payload(target) == dict(files):
        return False
    stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime()) + str(time.monotonic_ns())
    version = target / stamp
    version.mkdir()
    for rel, entry in files.items():
        path = version / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(entry.data)
        os.chmod(path, entry.mode)
        if fs_group is not None:
            os.chown(path, -1, fs_group)
    tmp = target / "..data_tmp"
    if tmp.is_symlink():
        tmp.unlink()
    tmp.symlink_to(stamp)
    os.replace(tmp, target / "..data")
    tops = {rel.split("/")[0] for rel in files}
    for top in tops:
        link = target / top
        if not link.is_symlink():
            link.symlink_to(f"..data/{top}")
    for child in target.iterdir():
        if child.name.startswith("..") and child.name not in ("..data", stamp):
            shutil.rmtree(child, ignore_errors=True)
        elif not child.name.startswith("..") and child.name not in tops and child.is_symlink():
            child.unlink()
    return True


def host_path_source(volume: JSON) -> str:
    src = volume.get("hostPath") or {}
    path, kind = str(src.get("path", "")), src.get("type") or ""
    if kind == "DirectoryOrCreate":
        os.makedirs(path, mode=0o755, exist_ok=True)
    elif kind == "FileOrCreate":
        os.makedirs(os.path.dirname(path) or "/", exist_ok=True)
        if not os.path.exists(path):
            with open(path, "a"):
                pass
    elif kind == "Directory" and not os.path.isdir(path):
        raise VolumeError(f"hostPath type check failed: {path} is not a directory")
    elif kind == "File" and not os.path.isfile(path):
        raise VolumeError(f"hostPath type check failed: {path} is not a file")
    elif kind and not os.path.exists(path):
        raise VolumeError(f"hostPath type check failed: {path} does not exist")
    return path


def volume_kind(volume: JSON) -> str:
    return next((k for k in volume if k != "name"), "unknown")


def plan_mounts(
    container: JSON, volume_paths: Mapping[str, str], env: Mapping[str, str]
) -> list[Mount]:
    """Mounts of a container, with subPath/subPathExpr resolved (created if missing)."""
    mounts = []
    for vm in container.get("volumeMounts") or []:
        name = vm.get("name", "")
        if name not in volume_paths:
            raise VolumeError(f'volume "{name}" of container {container.get("name")} not found')
        source = volume_paths[name]
        sub = vm.get("subPath") or ""
        if not sub and vm.get("subPathExpr"):
            sub = expand(str(vm["subPathExpr"]), env.get)
        if sub:
            source = os.path.join(source, _check_relative(sub))
            if not os.path.lexists(source):
                os.makedirs(source, mode=0o777, exist_ok=True)
        mounts.append(Mount(source, str(vm.get("mountPath", "")), bool(vm.get("readOnly"))))
    return mounts


def keep_visible(mounts: list[Mount], paths: list[str]) -> list[Mount]:
    """Read-only binds of each of `paths` that a mount would hide, to apply after it.

    Containers see the host's filesystem and run their programs from the project's
    checkout and virtualenv; a volume at /tmp (our Jobs mount one) must not hide a
    checkout under /tmp. The launcher opens every source before mounting anything, so
    these binds restore the host's directories on top of the volume.
    """
    hidden = dict.fromkeys(path for _, path in hidden_paths(mounts, paths))
    return [Mount(path, path, read_only=True) for path in hidden]


def hidden_paths(mounts: list[Mount], important: list[str]) -> list[tuple[str, str]]:
    """(mountPath, host path) pairs where a mount hides a path the container needs.

    Containers see the host's filesystem, so a volume at, say, /work hides a project
    at /work/main (its virtualenv included) from that container.
    """
    out = []
    for m in mounts:
        target = m.target.rstrip("/") or "/"
        for path in important:
            if path != target and path.startswith(target + "/"):
                out.append((m.target, path))
    return out


class PodVolumes:
    """The volumes of one pod under `root` (state_dir/pods/<uid>/volumes)."""

    def __init__(
        self,
        root: Path,
        lookups: VolumeLookups,
        token: TokenFn,
        node_allocatable: Mapping[str, str],
    ) -> None:
        self.root = root
        self.lookups = lookups
        self.token = token
        self.node_allocatable = node_allocatable
        self.paths: dict[str, str] = {}

    def setup(self, pod: JSON) -> dict[str, str]:
        """Create every volume; raises VolumeError naming the first that fails."""
        spec = pod.get("spec") or {}
        fs_group = (spec.get("securityContext") or {}).get("fsGroup")
        paths = {}
        for volume in spec.get("volumes") or []:
            name = volume.get("name", "")
            try:
                paths[name] = self._setup_one(pod, volume, fs_group)
            except VolumeError as exc:
                raise VolumeError(f'MountVolume.SetUp failed for volume "{name}" : {exc}') from exc
            except OSError as exc:
                raise VolumeError(f'MountVolume.SetUp failed for volume "{name}" : {exc}') from exc
        self.paths = paths
        return paths

    def _setup_one(self, pod: JSON, volume: JSON, fs_group: int | None) -> str:
        kind = volume_kind(volume)
        target = self.root / volume.get("name", "")
        if kind == "emptyDir":
            target.mkdir(parents=True, exist_ok=True)
            os.chmod(target, 0o777)
            if fs_group is not None:
                os.chown(target, -1, fs_group)
            return str(target)
        if kind == "hostPath":
            return host_path_source(volume)
        if kind == "persistentVolumeClaim":
            namespace = (pod.get("metadata") or {}).get("namespace", "default")
            try:
                return claim_directory(namespace, volume, self.lookups)
            except ClaimError as exc:
                raise VolumeError(str(exc)) from exc
        if kind in FILE_VOLUME_TYPES:
            files = volume_payload(pod, volume, self.lookups, self.token, self.node_allocatable)
            write_payload(target, files, fs_group)
            return str(target)
        raise VolumeError(
            f"volume type {kind} is not supported by the localkube node ({UNSUPPORTED_HINT})"
        )

    def refresh(self, pod: JSON) -> None:
        """Re-render file volumes (ConfigMap/Secret updates, token rotation); best effort."""
        spec = pod.get("spec") or {}
        fs_group = (spec.get("securityContext") or {}).get("fsGroup")
        for volume in spec.get("volumes") or []:
            if volume_kind(volume) not in FILE_VOLUME_TYPES:
                continue
            try:
                files = volume_payload(pod, volume, self.lookups, self.token, self.node_allocatable)
                if write_payload(self.root / volume.get("name", ""), files, fs_group):
                    log.info(
                        "Updated volume %s of pod %s/%s",
                        volume.get("name"),
                        pod["metadata"]["namespace"],
                        pod["metadata"]["name"],
                    )
            except Exception as exc:
                log.warning("Could not refresh volume %s: %s", volume.get("name"), exc)
