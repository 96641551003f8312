"""Image mapping (localkube.node.images)."""

from __future__ import annotations

import pytest

from localkube.node.config import ImageRuntime
from localkube.node.images import (
    CommandError,
    ImageError,
    Interpreter,
    build_argv,
    find_runtime,
    require_runtime,
    working_dir,
)

IMAGES = [
    ImageRuntime(pattern="python:*", entrypoint=["python3"]),
    ImageRuntime(
        pattern="*mlcycle/trainer:*",
        entrypoint=["{python}", "-m", "trainer"],
        working_dir="{venv_bin}",
    ),
    ImageRuntime(pattern="*", entrypoint=[]),
]
INTERP = Interpreter.of("/venv/bin/python")


def test_first_match_wins() -> None:
    assert find_runtime(IMAGES, "python:3.11") is IMAGES[0]
    assert find_runtime(IMAGES, "ghcr.io/x/mlcycle/trainer:1.0") is IMAGES[1]
    assert find_runtime(IMAGES, "nginx") is IMAGES[2]
    assert find_runtime(IMAGES[:2], "nginx:1.27") is None


def test_unknown_image_message() -> None:
    with pytest.raises(ImageError) as err:
        require_runtime(IMAGES[:2], "nginx:1.27", "localnode")
    assert str(err.value) == (
        "image 'nginx:1.27' has no local runtime on node localnode; "
        "known images: python:*, *mlcycle/trainer:*"
    )


def test_command_replaces_entrypoint_and_args_are_appended() -> None:
    trainer = IMAGES[1]
    assert build_argv(trainer, {"args": ["--x"]}, INTERP) == [
        "/venv/bin/python",
        "-m",
        "trainer",
        "--x",
    ]
    assert build_argv(trainer, {"command": ["python", "{python}"], "args": ["1"]}, INTERP) == [
        "python",
        "{python}",
        "1",
    ]


def test_nothing_to_run() -> None:
    with pytest.raises(CommandError):
        build_argv(IMAGES[2], {"name": "c", "image": "nginx"}, INTERP)


def test_working_dir() -> None:
    assert working_dir(IMAGES[1], {}, INTERP) == "/venv/bin"
    assert working_dir(IMAGES[1], {"workingDir": "/app"}, INTERP) == "/app"
    assert working_dir(IMAGES[0], {}, INTERP) == "/"
