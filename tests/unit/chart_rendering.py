"""Rendering the Helm chart for the unit tests: `helm template` with the cached Helm binary
(built by `make build`, like the control plane), no cluster involved."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from localkube import build
from localkube.release import CHART

SCENARIOS = sorted((CHART / "ci").glob("*.yaml"))
RELEASE, NAMESPACE = "rel", "mlops"
Manifest = dict[str, Any]


@cache
def helm() -> Path:
    return build.ensure_binaries(["helm"])["helm"]


def run_helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm()), *args], capture_output=True, text=True, timeout=120)


def render(*values: str, show_only: str | None = None) -> list[Manifest]:
    """Every document `helm template` renders with these --set/--values arguments."""
    extra = ["--show-only", show_only] if show_only else []
    completed = run_helm("template", RELEASE, str(CHART), "--namespace", NAMESPACE,
                         *values, *extra)
    assert completed.returncode == 0, completed.stderr
    return [doc for doc in yaml.safe_load_all(completed.stdout) if doc]


def scenario_args(scenario: Path | None) -> list[str]:
    return [] if scenario is None else ["--values", str(scenario)]


def of_kind(documents: list[Manifest], kind: str) -> list[Manifest]:
    return [doc for doc in documents if doc["kind"] == kind]


def pod_templates(documents: list[Manifest]) -> Iterator[tuple[str, Manifest]]:
    """(workload name, pod spec) of every Deployment and Job."""
    for doc in documents:
        if doc["kind"] in ("Deployment", "Job"):
            yield doc["metadata"]["name"], doc["spec"]["template"]["spec"]
