"""Image cache keys (localkube.images): an unchanged input rebuilds nothing, a changed one
makes a new key."""

from __future__ import annotations

from pathlib import Path

import pytest

from localkube import images


def test_image_keys_follow_their_inputs(monkeypatch: pytest.MonkeyPatch,
                                        tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("x = 1\n")
    (tmp_path / "lock.txt").write_text("numpy==2\n")
    (tmp_path / "Dockerfile").write_text("FROM ${PYTHON_IMAGE}\n")
    spec = images.ImageSpec("demo", tmp_path / "Dockerfile", ("lock.txt", "pkg"), on_base=True)
    monkeypatch.setattr(images, "REPO_ROOT", tmp_path)
    monkeypatch.setitem(images.SPECS, "demo", spec)
    first = images.image_key("demo")
    assert images.image_key("demo") == first
    (tmp_path / "pkg" / "__pycache__").mkdir()
    (tmp_path / "pkg" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"\0")
    assert images.image_key("demo") == first, "bytecode is not an input"
    (tmp_path / "lock.txt").write_text("numpy==2.1\n")
    assert images.image_key("demo") != first
    assert images.reference("demo").startswith("localkube.local/mlcycle/demo:")


def test_trainer_and_serving_share_the_runtime_lock_and_base() -> None:
    for name in ("trainer", "serving"):
        spec = images.SPECS[name]
        assert spec.on_base and "requirements/runtime.lock" in spec.inputs


@pytest.mark.parametrize("name", images.PROJECT_IMAGES)
def test_project_dockerfiles_keep_their_base_switchable(name: str) -> None:
    """Docker users build FROM python:*-slim; here PYTHON_IMAGE names the Debian base."""
    text = images.SPECS[name].dockerfile.read_text()
    assert "ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm" in text
    froms = [line for line in text.splitlines() if line.startswith("FROM ")]
    assert froms and all(line.startswith("FROM ${PYTHON_IMAGE}") for line in froms)


def test_the_mirror_comes_from_apt_sources() -> None:
    assert images.debian_mirror().startswith("http")
