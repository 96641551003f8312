"""The Argo CD health checks (gitops/argocd/resource_customizations) run in a real Lua VM
(lupa) against sample objects of each kind, the way Argo CD calls them: the object as the
global `obj`, a table {status, message} back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

lupa = pytest.importorskip("lupa", reason="lupa is in the dev extra: run `make lock` and "
                           "`make venv`")

ROOT = Path(__file__).resolve().parents[2]
CHECKS = ROOT / "gitops" / "argocd" / "resource_customizations" / "mlcycle.dev"
KUSTOMIZATION = ROOT / "gitops" / "argocd" / "kustomization.yaml"


def condition(type_: str, status: str, reason: str = "Reason", message: str = "") -> dict[str, Any]:
    return {"type": type_, "status": status, "reason": reason, "message": message or reason}


def resource(status: dict[str, Any] | None, generation: int = 1) -> dict[str, Any]:
    body: dict[str, Any] = {"metadata": {"name": "x", "generation": generation}}
    if status is not None:
        body["status"] = status
    return body


def health(kind: str, body: dict[str, Any]) -> tuple[str, str]:
    runtime = lupa.LuaRuntime(unpack_returned_tuples=True)
    runtime.globals().obj = _to_lua(runtime, body)
    result = runtime.execute((CHECKS / kind / "health.lua").read_text())
    return str(result["status"]), str(result["message"] or "")


def _to_lua(runtime: Any, value: Any) -> Any:
    """JSON-like data as Lua tables (arrays 1-based), as Argo CD hands objects to scripts."""
    if isinstance(value, dict):
        return runtime.table_from({k: _to_lua(runtime, v) for k, v in value.items()})
    if isinstance(value, list):
        return runtime.table_from([_to_lua(runtime, v) for v in value])
    return value


COMMON = [
    (resource(None), "Progressing", "Waiting for the mlcycle operator"),
    (resource({"phase": "Ready", "observedGeneration": 1}, generation=2), "Progressing",
     "generation 2"),
]


@pytest.mark.parametrize("kind", ["Dataset", "TrainingJob", "ModelDeployment"])
@pytest.mark.parametrize(("body", "expected", "words"), COMMON)
def test_no_status_or_a_stale_one_is_progressing(
    kind: str, body: dict[str, Any], expected: str, words: str
) -> None:
    status, message = health(kind, body)
    assert status == expected and words in message


@pytest.mark.parametrize(("status", "expected", "words"), [
    ({"phase": "Ingesting", "observedGeneration": 1,
      "conditions": [condition("Ready", "Unknown", "Ingesting", "Job iris-ingest runs")]},
     "Progressing", "iris-ingest"),
    ({"phase": "Ready", "observedGeneration": 1,
      "conditions": [condition("Ready", "True", "Ingested", "version abc: 150 rows")]},
     "Healthy", "150 rows"),
    ({"phase": "Failed", "observedGeneration": 1,
      "conditions": [condition("Ready", "False", "TargetColumnMissing", "no column species")]},
     "Degraded", "species"),
])
def test_dataset(status: dict[str, Any], expected: str, words: str) -> None:
    got, message = health("Dataset", resource(status))
    assert got == expected and words in message


@pytest.mark.parametrize(("status", "expected", "words"), [
    ({"phase": "Pending", "observedGeneration": 1,
      "conditions": [condition("Ready", "False", "DatasetNotReady", "Dataset iris has none")]},
     "Progressing", "Dataset iris"),
    ({"phase": "Running", "observedGeneration": 1,
      "conditions": [condition("Ready", "False", "Training", "Job iris-rf-train is training")]},
     "Progressing", "training"),
    ({"phase": "Succeeded", "observedGeneration": 1,
      "conditions": [condition("Ready", "True", "Succeeded", "accuracy = 0.9333"),
                     condition("Validated", "True", "GatesPassed")]},
     "Healthy", "accuracy"),
    ({"phase": "Succeeded", "observedGeneration": 1,
      "conditions": [condition("Ready", "True", "Succeeded", "accuracy = 0.5"),
                     condition("Validated", "False", "GatesFailed", "accuracy 0.5 < 0.85")]},
     "Healthy", "not promoted: accuracy 0.5 < 0.85"),
    ({"phase": "Failed", "observedGeneration": 1,
      "conditions": [condition("Ready", "False", "InvalidHyperparameters", "n_estimatorz")]},
     "Degraded", "n_estimatorz"),
])
def test_training_job(status: dict[str, Any], expected: str, words: str) -> None:
    got, message = health("TrainingJob", resource(status))
    assert got == expected and words in message


@pytest.mark.parametrize(("status", "expected", "words"), [
    ({"phase": "Progressing", "observedGeneration": 1,
      "conditions": [condition("Ready", "False", "RollingOut", "rolling out version 2: 1/2"),
                     condition("Progressing", "True", "RollingOut"),
                     condition("Available", "True", "MinimumReplicasAvailable"),
                     condition("Degraded", "False", "AsExpected")]},
     "Progressing", "version 2"),
    ({"phase": "Available", "observedGeneration": 1,
      "conditions": [condition("Ready", "True", "Serving", "model iris version 2 on 2"),
                     condition("Available", "True", "MinimumReplicasAvailable"),
                     condition("Degraded", "False", "AsExpected")]},
     "Healthy", "version 2"),
    ({"phase": "Degraded", "observedGeneration": 1,
      "conditions": [condition("Ready", "False", "RuntimeMismatch", "sklearn 1.5 != 1.9"),
                     condition("Degraded", "True", "RuntimeMismatch", "sklearn 1.5 != 1.9")]},
     "Degraded", "sklearn"),
    ({"phase": "Failed", "observedGeneration": 1,
      "conditions": [condition("Ready", "False", "ModelNotFound", "no alias champion")]},
     "Degraded", "champion"),
    ({"phase": "Available", "observedGeneration": 1,
      "conditions": [condition("Ready", "False", "RollingOut", "0/2 ready"),
                     condition("Available", "False", "NoReplicasAvailable", "0/2 replicas")]},
     "Degraded", "0/2 replicas"),
])
def test_model_deployment(status: dict[str, Any], expected: str, words: str) -> None:
    got, message = health("ModelDeployment", resource(status))
    assert got == expected and words in message


def test_the_kustomization_installs_each_check_under_argo_cds_key() -> None:
    text = KUSTOMIZATION.read_text()
    for kind in ("Dataset", "TrainingJob", "ModelDeployment"):
        assert (f"resource.customizations.health.mlcycle.dev_{kind}="
                f"resource_customizations/mlcycle.dev/{kind}/health.lua") in text
