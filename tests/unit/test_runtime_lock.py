"""One runtime for training and serving: both images install the same lock, and the local
environment (where the local cluster's pods run) holds that lock pin for pin."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IMAGES = ("trainer_image", "serving_image")


def pins(lock: Path) -> dict[str, str]:
    lines = lock.read_text().splitlines()
    found = (re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line) for line in lines)
    return {m.group(1).lower(): m.group(2) for m in found if m}


def test_trainer_and_serving_images_install_exactly_the_one_runtime_lock() -> None:
    for image in IMAGES:
        dockerfile = (ROOT / image / "Dockerfile").read_text()
        assert "COPY requirements/runtime.lock" in dockerfile, image
        assert "--requirement /tmp/runtime.lock" in dockerfile, image
        assert "--no-deps" in dockerfile, image
        assert re.search(r"^ARG PYTHON_IMAGE=python:3\.11\.7-slim-bookworm$", dockerfile, re.M)


def test_the_runtime_lock_pins_the_model_runtime() -> None:
    runtime = pins(ROOT / "requirements/runtime.lock")
    assert {"scikit-learn", "numpy", "mlflow-skinny", "pandas"} <= set(runtime)


def test_the_local_environment_has_every_runtime_pin() -> None:
    runtime = pins(ROOT / "requirements/runtime.lock")
    dev = pins(ROOT / "requirements/dev.lock")
    different = {name: (pin, dev.get(name)) for name, pin in runtime.items()
                 if dev.get(name) != pin}
    assert different == {}
