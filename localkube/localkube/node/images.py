"""Image references to local programs (`NodeConfig.images`), and a container's argv."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .config import ImageRuntime


class ImageError(Exception):
    """No local runtime for an image (kubelet reason `ErrImagePull`)."""


class CommandError(Exception):
    """Nothing to run (kubelet reason `CreateContainerError`)."""


@dataclass(frozen=True)
class Interpreter:
    """The words substituted in `ImageRuntime` fields."""

    python: str
    venv_bin: str

    @classmethod
    def of(cls, python: str) -> Interpreter:
        return cls(python=python, venv_bin=os.path.dirname(python))

    def substitute(self, word: str) -> str:
        return word.replace("{python}", self.python).replace("{venv_bin}", self.venv_bin)


def find_runtime(images: Sequence[ImageRuntime], image: str) -> ImageRuntime | None:
    """First runtime whose pattern matches the image reference."""
    for runtime in images:
        if fnmatch.fnmatchcase(image, runtime.pattern):
            return runtime
    return None


def require_runtime(images: Sequence[ImageRuntime], image: str, node_name: str) -> ImageRuntime:
    runtime = find_runtime(images, image)
    if runtime is None:
        known = ", ".join(r.pattern for r in images) or "none"
        raise ImageError(
            f"image {image!r} has no local runtime on node {node_name}; known images: {known}"
        )
    return runtime


def build_argv(runtime: ImageRuntime, container: dict[str, Any], interp: Interpreter) -> list[str]:
    """`command` replaces the entrypoint, `args` are appended (Docker semantics).

    Only the runtime's entrypoint gets `{python}`/`{venv_bin}` substitution; the pod's
    own words are left alone.
    """
    command = [str(w) for w in container.get("command") or []]
    args = [str(w) for w in container.get("args") or []]
    argv = command or [interp.substitute(w) for w in runtime.entrypoint]
    argv = argv + args
    if not argv:
        raise CommandError(
            f"no command specified: container {container.get('name')!r} sets no command "
            f"and image {container.get('image')!r} has no entrypoint"
        )
    return argv


def working_dir(runtime: ImageRuntime, container: dict[str, Any], interp: Interpreter) -> str:
    if container.get("workingDir"):
        return str(container["workingDir"])
    if runtime.working_dir:
        return interp.substitute(runtime.working_dir)
    return "/"
