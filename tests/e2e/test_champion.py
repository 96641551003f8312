"""Champion and challenger on the cluster: a gate with `baseline: champion` compares a new
model with the version the alias points at, on the new model's held-out rows. A worse
challenger stays registered and unpromoted with the reason in status; one that matches the
champion moves the alias; a malformed champion gate is refused at apply time."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from mlflow import MlflowClient

from localkube.stack import Stack
from localkube.testing import wait_for
from tests.e2e.mlhelpers import condition, kubectl_apply, load_example, read, wait_phase

pytestmark = pytest.mark.e2e

CHAMPION_GATE = {"metric": "accuracy", "op": ">=", "baseline": "champion"}


def training(model_name: str, gates: list[dict[str, Any]]) -> dict[str, Any]:
    document = load_example("iris/trainingjob.yaml", {"spec": {
        "algorithm": "decision_tree_classifier",
        "validation": {"folds": 0, "gates": gates},
        "registry": {"modelName": model_name, "alias": "champion"},
    }})
    document["spec"]["hyperparameters"] = {"max_depth": 3, "random_state": 0}
    return document


def trained_version(k8s: client.ApiClient, namespace: str, version: int) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        found = read(k8s, "trainingjobs", namespace, "iris-rf")
        status = found.get("status") or {}
        model = status.get("model") or {}
        finished = status.get("phase") in ("Succeeded", "Failed")
        return found if finished and model.get("version") == version else None
    return wait_for(f"model version {version}", done, timeout=300)


def test_only_a_challenger_that_matches_the_champion_moves_the_alias(
    mlstack: Stack, k8s: client.ApiClient, ml_namespace: str
) -> None:
    model_name = f"iris-champion-{ml_namespace}"
    for document in (load_example("iris/dataset.yaml"), training(model_name, [CHAMPION_GATE])):
        code, output = kubectl_apply(mlstack, ml_namespace, document)
        assert code == 0, output
    url = mlstack.services.mlflow_url
    registry = MlflowClient(tracking_uri=url, registry_uri=url)

    first = wait_phase(k8s, "trainingjobs", ml_namespace, "iris-rf", ("Succeeded", "Failed"),
                       timeout=300)
    assert first["status"]["phase"] == "Succeeded", first["status"]["conditions"]
    assert "champion" not in first["status"]  # nothing to compare with: the gate holds
    assert registry.get_model_version_by_alias(model_name, "champion").version == "1"
    champion_accuracy = first["status"]["metrics"]["accuracy"]

    # A stump: worse on the same held-out rows. Registered, not promoted, and status says why.
    patch = client.CustomObjectsApi(k8s).patch_namespaced_custom_object
    patch("mlcycle.dev", "v1alpha1", ml_namespace, "trainingjobs", "iris-rf",
          {"spec": {"hyperparameters": {"max_depth": 1}}})
    worse = trained_version(k8s, ml_namespace, 2)
    status = worse["status"]
    assert status["phase"] == "Succeeded", status
    assert status["champion"]["version"] == 1
    assert status["champion"]["metrics"] == {"accuracy": pytest.approx(champion_accuracy)}
    validated = condition(worse, "Validated")
    assert (validated["status"], validated["reason"]) == ("False", "GatesFailed")
    assert validated["message"] == (f"accuracy >= champion v1 {champion_accuracy:.4g} "
                                    f"(got {status['metrics']['accuracy']:.4g})"), validated
    assert status["runs"][0]["gatesPassed"] is False
    assert registry.get_model_version_by_alias(model_name, "champion").version == "1"
    run = registry.get_run(status["mlflow"]["runId"])
    assert run.data.metrics["champion_accuracy"] == pytest.approx(champion_accuracy)
    assert run.data.tags["mlcycle.champion.version"] == "1"

    # The champion's own settings again: as good as the champion on these rows, so promoted.
    patch("mlcycle.dev", "v1alpha1", ml_namespace, "trainingjobs", "iris-rf",
          {"spec": {"hyperparameters": {"max_depth": 3}}})
    matched = trained_version(k8s, ml_namespace, 3)
    assert condition(matched, "Validated")["status"] == "True", matched["status"]
    assert matched["status"]["champion"]["version"] == 1
    assert registry.get_model_version_by_alias(model_name, "champion").version == "3"


@pytest.mark.parametrize(("gate", "registry", "refusal"), [
    ({**CHAMPION_GATE, "tolerance": -0.01}, {"alias": "champion"}, "tolerance"),
    ({**CHAMPION_GATE, "threshold": 0.9}, {"alias": "champion"},
     "set exactly one of threshold and baseline"),
    (CHAMPION_GATE, {"alias": None}, "set registry.alias"),
])
def test_a_malformed_champion_gate_is_refused_at_apply_time(
    mlstack: Stack, ml_namespace: str, gate: dict[str, Any], registry: dict[str, Any],
    refusal: str
) -> None:
    document = training("never", [gate])
    document["spec"]["registry"] = {"modelName": "never", **registry}
    if registry["alias"] is None:
        del document["spec"]["registry"]["alias"]
    code, output = kubectl_apply(mlstack, ml_namespace, document)
    assert code != 0 and refusal in output, output
