"""Log files, volume payloads and container helpers of the node agent (no cluster, no root)."""

from __future__ import annotations

import ast
import base64
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from localkube.node import containers as ct
from localkube.node import launch, logfiles
from localkube.node.runtime import Mount
from localkube.node.volumes import (
    FileEntry,
    VolumeError,
    hidden_paths,
    keep_visible,
    key_files,
    plan_mounts,
    volume_payload,
    write_payload,
)

JSON = dict[str, Any]


def write_log(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines))


def test_log_render_tail_and_partial_lines(tmp_path: Path) -> None:
    log = tmp_path / "0.log"
    write_log(
        log,
        [
            "2026-01-01T00:00:01.000000001Z stdout F one",
            "2026-01-01T00:00:02.000000000Z stdout P tw",
            "2026-01-01T00:00:02.500000000Z stdout F o",
            "2026-01-01T00:00:03.000000000Z stdout F three",
            "2026-01-01T00:00:04.000000000Z stdout P unterminated",
        ],
    )
    records, offset = logfiles.read_records(log)
    assert offset == log.stat().st_size
    text, open_line = logfiles.render(records, timestamps=False)
    assert text == b"one\ntwo\nthree\nunterminated"
    assert open_line
    tail, _ = logfiles.render(logfiles.tail_lines(records, 2), timestamps=False)
    assert tail == b"three\nunterminated"
    stamped, _ = logfiles.render(logfiles.tail_lines(records[:3], 1), timestamps=True)
    assert stamped == b"2026-01-01T00:00:02.000000000Z two\n"
    assert logfiles.tail_lines(records, 0) == []
    later = logfiles.since(records, 1767225602.4)  # 2026-01-01T00:00:02.4Z
    assert [r.content for r in later] == [b"o", b"three", b"unterminated"]


def test_read_records_leaves_incomplete_lines(tmp_path: Path) -> None:
    log = tmp_path / "0.log"
    log.write_bytes(b"2026-01-01T00:00:01Z stdout F a\n2026-01-01T00:00:01Z stdo")
    records, offset = logfiles.read_records(log)
    assert [r.content for r in records] == [b"a"]
    assert offset == len(b"2026-01-01T00:00:01Z stdout F a\n")


def test_termination_message_and_fallback(tmp_path: Path) -> None:
    msg, log = tmp_path / "msg", tmp_path / "0.log"
    write_log(log, [f"2026-01-01T00:00:01Z stdout F line {i}" for i in range(100)])
    msg.write_text("")
    assert ct.termination_message(msg, log, "File", 1) is None
    fallback = ct.termination_message(msg, log, "FallbackToLogsOnError", 1)
    assert fallback is not None
    assert fallback.startswith("line 20\n") and fallback.endswith("line 99\n")
    assert ct.termination_message(msg, log, "FallbackToLogsOnError", 0) is None
    msg.write_text("x" * 5000)
    assert len(ct.termination_message(msg, log, "File", 0) or "") == 4096


def test_restart_policy_and_backoff() -> None:
    assert ct.effective_restart_policy("main", "Never") == "Never"
    assert ct.effective_restart_policy("init", "Always") == "OnFailure"
    assert ct.effective_restart_policy("init", "Never") == "Never"
    assert ct.effective_restart_policy("sidecar", "Never") == "Always"
    assert ct.should_restart("OnFailure", 1) and not ct.should_restart("OnFailure", 0)
    assert ct.should_restart("Always", 0) and not ct.should_restart("Never", 1)
    assert [ct.backoff_delay(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


def test_security_ids_container_overrides_pod() -> None:
    pod = {
        "spec": {
            "securityContext": {
                "runAsUser": 1000,
                "runAsGroup": 1000,
                "fsGroup": 2000,
                "supplementalGroups": [3000],
            }
        }
    }
    assert ct.security_ids(pod, {}) == (1000, 1000, [3000, 2000])
    assert ct.security_ids(pod, {"securityContext": {"runAsUser": 0}}) == (0, 1000, [3000, 2000])
    assert ct.security_ids({"spec": {}}, {}) == (None, None, [])


class Lookups:
    def get_secret(self, namespace: str, name: str) -> JSON | None:
        if name != "tls":
            return None
        return {"data": {"tls.key": base64.b64encode(b"KEY").decode()}}

    def get_config_map(self, namespace: str, name: str) -> JSON | None:
        if name != "kube-root-ca.crt":
            return None
        return {"data": {"ca.crt": "CA"}, "binaryData": {"raw": base64.b64encode(b"\0").decode()}}


POD: JSON = {
    "metadata": {"name": "p", "namespace": "ns", "labels": {"a": "b"}},
    "spec": {"containers": [{"name": "c"}]},
}


def payload(volume: JSON) -> dict[str, FileEntry]:
    def token(audience: str | None, seconds: int) -> str:
        return f"token-{audience}-{seconds}"

    files: dict[str, FileEntry] = volume_payload(
        POD, volume, Lookups(), token, {"cpu": "2", "memory": "8Gi"}
    )
    return files


def test_kube_api_access_projected_volume() -> None:
    files = payload(
        {
            "name": "kube-api-access-x",
            "projected": {
                "defaultMode": 420,
                "sources": [
                    {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                    {
                        "configMap": {
                            "name": "kube-root-ca.crt",
                            "items": [{"key": "ca.crt", "path": "ca.crt"}],
                        }
                    },
                    {
                        "downwardAPI": {
                            "items": [
                                {
                                    "path": "namespace",
                                    "fieldRef": {
                                        "apiVersion": "v1",
                                        "fieldPath": "metadata.namespace",
                                    },
                                }
                            ]
                        }
                    },
                ],
            },
        }
    )
    assert files == {
        "token": FileEntry(b"token-None-3607", 0o644),
        "ca.crt": FileEntry(b"CA", 0o644),
        "namespace": FileEntry(b"ns", 0o644),
    }


def test_config_map_secret_and_downward_volumes() -> None:
    cm = payload({"name": "c", "configMap": {"name": "kube-root-ca.crt", "defaultMode": 0o600}})
    assert cm == {"ca.crt": FileEntry(b"CA", 0o600), "raw": FileEntry(b"\0", 0o600)}
    sec = payload(
        {
            "name": "s",
            "secret": {
                "secretName": "tls",
                "items": [{"key": "tls.key", "path": "k/key", "mode": 0o400}],
            },
        }
    )
    assert sec == {"k/key": FileEntry(b"KEY", 0o400)}
    assert payload({"name": "s", "secret": {"secretName": "nope", "optional": True}}) == {}
    with pytest.raises(VolumeError, match='secret "nope" not found'):
        payload({"name": "s", "secret": {"secretName": "nope"}})
    with pytest.raises(VolumeError, match="non-existent"):
        payload(
            {"name": "s", "secret": {"secretName": "tls", "items": [{"key": "x", "path": "x"}]}}
        )
    down = payload(
        {
            "name": "d",
            "downwardAPI": {
                "items": [
                    {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
                    {
                        "path": "mem",
                        "resourceFieldRef": {
                            "containerName": "c",
                            "resource": "limits.memory",
                            "divisor": "1Gi",
                        },
                    },
                ]
            },
        }
    )
    assert down["labels"].data == b'a="b"'
    assert down["mem"].data == b"8"


def test_item_paths_cannot_escape() -> None:
    with pytest.raises(VolumeError):
        key_files({"k": b"v"}, [{"key": "k", "path": "../etc/passwd"}], 0o644, "missing")


def test_write_payload_is_atomic_and_idempotent(tmp_path: Path) -> None:
    target = tmp_path / "vol"
    assert write_payload(target, {"a": FileEntry(b"1", 0o644), "d/b": FileEntry(b"2", 0o600)}, None)
    assert (target / "a").read_bytes() == b"1"
    assert (target / "d" / "b").read_bytes() == b"2"
    assert os.readlink(target / "a") == "..data/a"
    assert not write_payload(
        target, {"a": FileEntry(b"1", 0o644), "d/b": FileEntry(b"2", 0o600)}, None
    )
    assert write_payload(target, {"a": FileEntry(b"3", 0o644)}, None)
    assert (target / "a").read_bytes() == b"3"
    assert not (target / "d").exists()
    assert len([p for p in target.iterdir() if p.name.startswith("..")]) == 2


def test_plan_mounts_sub_path(tmp_path: Path) -> None:
    vol = tmp_path / "v"
    vol.mkdir()
    container = {
        "name": "c",
        "volumeMounts": [
            {"name": "v", "mountPath": "/data"},
            {"name": "v", "mountPath": "/cache", "subPath": "cache", "readOnly": True},
            {"name": "v", "mountPath": "/logs", "subPathExpr": "$(POD)/logs"},
        ],
    }
    mounts = plan_mounts(container, {"v": str(vol)}, {"POD": "p1"})
    assert mounts == [
        Mount(str(vol), "/data"),
        Mount(str(vol / "cache"), "/cache", read_only=True),
        Mount(str(vol / "p1" / "logs"), "/logs"),
    ]
    assert (vol / "p1" / "logs").is_dir()
    with pytest.raises(VolumeError):
        plan_mounts({"name": "c", "volumeMounts": [{"name": "x", "mountPath": "/x"}]}, {}, {})


def test_hidden_paths() -> None:
    mounts = [Mount("/s", "/work"), Mount("/s", "/data")]
    assert hidden_paths(mounts, ["/work/main/.venv/bin", "/usr/bin"]) == [
        ("/work", "/work/main/.venv/bin")
    ]


def test_launcher_imports_only_the_standard_library() -> None:
    tree = ast.parse(Path(launch.__file__).read_text())
    modules: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "no relative imports in the launcher"
            modules.add((node.module or "").split(".")[0])
    assert modules <= set(sys.stdlib_module_names) | {"__future__"}


def test_runtime_paths_hidden_by_a_volume_are_bound_back_read_only() -> None:
    """A checkout under /tmp stays visible under a container's /tmp volume."""
    mounts = [Mount("/state/pods/u/tmp", "/tmp"), Mount("/state/vol", "/data")]
    assert keep_visible(mounts, ["/tmp/ci/main", "/root/.pyenv/3.11"]) == [
        Mount("/tmp/ci/main", "/tmp/ci/main", read_only=True)]
    assert keep_visible(mounts, ["/work/main"]) == []


def test_runtime_paths_cover_the_checkout_and_every_mapped_program() -> None:
    from localkube.node.config import ImageRuntime
    from localkube.node.starter import runtime_paths
    from localkube.paths import REPO_ROOT

    paths = runtime_paths([ImageRuntime(pattern="quay.io/minio/minio:*",
                                        entrypoint=["/opt/cache/minio-v1/minio"]),
                           ImageRuntime(pattern="python:*", entrypoint=["python3"])])
    assert "/opt/cache/minio-v1" in paths
    assert str(REPO_ROOT.resolve()) in paths
