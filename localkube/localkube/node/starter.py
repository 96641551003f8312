"""From a container spec to what the launcher runs: argv, environment, mounts, user.

`prepare_launch` raises `StartFailure` with the kubelet's waiting reason when the
container cannot be created (the pod worker retries later); an unknown image raises
`ImageError`, whose reason depends on how often it was tried.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from localkube.paths import REPO_ROOT

from . import containers as ct
from .config import ImageRuntime
from .env import ConfigError, expand_args, resolve_env, runtime_env
from .images import CommandError, build_argv, require_runtime, working_dir
from .kube import JSON
from .runtime import LaunchSpec, Mount
from .services import NodeServices
from .volumes import VolumeError, keep_visible, plan_mounts


class StartFailure(Exception):
    def __init__(self, reason: str, message: str, retry_in: float) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.retry_in = retry_in


@dataclass(frozen=True)
class Prepared:
    launch: LaunchSpec


def runtime_paths(images: Sequence[ImageRuntime]) -> list[str]:
    """What containers' programs run from: this checkout (the editable install's sources),
    its virtualenv, the interpreter the virtualenv is built on, and the directory of every
    program an image maps to (the MinIO server in the binary cache, say)."""
    programs = [os.path.dirname(image.entrypoint[0]) for image in images
                if image.entrypoint and os.path.isabs(image.entrypoint[0])]
    paths = {os.path.realpath(p) for p in (str(REPO_ROOT), sys.prefix, sys.base_prefix, *programs)}
    return sorted(p for p in paths if not any(p.startswith(q + "/") for q in paths))


def prepare_launch(
    svc: NodeServices,
    pod: JSON,
    container: JSON,
    *,
    volume_paths: dict[str, str],
    message_file: Path,
    home: str,
    tmp_dir: Path,
) -> Prepared:
    """`pod` must carry the pod IP/host IP in its status (for fieldRefs).

    `home` is the pod's private HOME (an image would define one; the host's /root
    must not collect the caches of every pod), and `tmp_dir` becomes the container's
    own /tmp, emptied at each start, unless a volume is mounted there.
    """
    cfg = svc.config
    runtime = require_runtime(cfg.images, str(container.get("image", "")), cfg.node_name)
    try:
        kube_env = resolve_env(
            pod, container, svc.lookups, services=svc.service_env, node_allocatable=svc.allocatable
        )
        argv = expand_args(build_argv(runtime, container, svc.interp), kube_env)
        mounts = plan_mounts(container, volume_paths, kube_env)
    except (ConfigError, VolumeError) as exc:
        raise StartFailure("CreateContainerConfigError", str(exc), 2.0) from exc
    except CommandError as exc:
        raise StartFailure("CreateContainerError", str(exc), 10.0) from exc
    message_file.parent.mkdir(parents=True, exist_ok=True)
    message_file.write_bytes(b"")
    os.chmod(message_file, 0o666)
    target = str(container.get("terminationMessagePath") or ct.DEFAULT_TERMINATION_PATH)
    mounts.append(Mount(str(message_file), target))
    if not any(m.target.rstrip("/") == "/tmp" for m in mounts):
        shutil.rmtree(tmp_dir, ignore_errors=True)
        tmp_dir.mkdir(parents=True)
        os.chmod(tmp_dir, 0o1777)
        mounts.append(Mount(str(tmp_dir), "/tmp"))
    mounts += keep_visible(mounts, runtime_paths(cfg.images))
    uid, gid, groups = ct.security_ids(pod, container)
    pod_name = str((pod.get("metadata") or {}).get("name", ""))
    env = runtime_env(kube_env, pod_name=pod_name, venv_bin=svc.interp.venv_bin, home=home)
    launch = LaunchSpec(
        argv=argv,
        env=env,
        cwd=working_dir(runtime, container, svc.interp),
        uid=uid,
        gid=gid,
        groups=groups,
        mounts=mounts,
    )
    return Prepared(launch)
