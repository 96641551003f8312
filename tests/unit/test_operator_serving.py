"""The serving side of the operator's pure layer: the Deployment it builds, the rollout status
it reads back, and the runtime check that refuses a model trained elsewhere."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from mlcycle.builders.modeldeployment import build_autoscaler, build_deployment, build_service
from mlcycle.objects import Invalid, ModelDeployment, parse_model_deployment
from mlcycle.reconcile.modeldeployment import (
    deployment_outcome,
    reports_deployment_events,
    spec_refusal,
)
from mlcycle.registry import ModelVersion
from mlcycle.runtime import parse_runtime, runtime_mismatch
from mlcycle.settings import Settings
from mlcycle_contract import constants, environment
from mlcycle_contract.api.modeldeployment import ModelDeploymentSpec, ModelDeploymentStatus

SETTINGS = Settings(mlflow_tracking_uri="http://mlflow:5000", s3_endpoint="http://s3:9000")
RUNTIME = {"python": "3.11.7", "sklearn": "1.9.1", "numpy": "2.4.6"}
OWNER: dict[str, Any] = {
    "apiVersion": constants.API_GROUP_VERSION, "kind": "ModelDeployment",
    "metadata": {"name": "iris", "namespace": "ml", "uid": "u1", "generation": 3},
    "spec": {"model": {"name": "iris-classifier", "alias": "champion"}, "replicas": 2},
}
PARSED = parse_model_deployment(OWNER)
assert not isinstance(PARSED, Invalid)
DEPLOYMENT: ModelDeployment = PARSED
SPEC = DEPLOYMENT.spec


def with_spec(spec: ModelDeploymentSpec) -> ModelDeployment:
    return replace(DEPLOYMENT, spec=spec)


def outcome_status(status: dict[str, Any] | None, deployment: dict[str, Any]) -> dict[str, Any]:
    """deployment_outcome from a ModelDeployment with this status, as the wire sees it."""
    owner = replace(DEPLOYMENT, status=ModelDeploymentStatus.model_validate(status or {}))
    return deployment_outcome(owner, deployment).status.to_wire()


def test_deployment_serves_a_concrete_version_with_zero_unavailable_rollouts() -> None:
    deployment = build_deployment(DEPLOYMENT, ModelVersion("iris-classifier", 4, RUNTIME),
                                  SETTINGS)
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    container = spec["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env[environment.MODEL_URI.name] == "models:/iris-classifier/4"  # never the alias
    assert env[environment.MLFLOW_ALLOW_PICKLE_DESERIALIZATION.name] == "false"
    assert container["readinessProbe"]["httpGet"]["path"] == environment.READINESS_PATH
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    labels = spec["template"]["metadata"]["labels"]
    assert labels[constants.LABEL_MODEL_VERSION] == "4"
    assert set(spec["selector"]["matchLabels"].items()) <= set(labels.items())
    assert constants.LABEL_MODEL_VERSION not in spec["selector"]["matchLabels"]
    (spread,) = spec["template"]["spec"]["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["whenUnsatisfiable"] == "ScheduleAnyway"  # one node still serves
    assert spread["labelSelector"]["matchLabels"] == spec["selector"]["matchLabels"]


def test_the_server_runs_as_many_worker_processes_as_spec_serving_workers() -> None:
    def workers_variable(spec: ModelDeploymentSpec) -> str | None:
        built = build_deployment(with_spec(spec), ModelVersion("iris-classifier", 1, RUNTIME),
                                 SETTINGS)
        env = built["spec"]["template"]["spec"]["containers"][0]["env"]
        return next((e["value"] for e in env if e["name"] == environment.WORKERS.name), None)

    assert workers_variable(SPEC) == "1"
    two = ModelDeploymentSpec.model_validate({**OWNER["spec"], "serving": {"workers": 2}})
    assert workers_variable(two) == "2"


def test_an_autoscaled_deployment_leaves_replicas_to_the_autoscaler() -> None:
    spec = ModelDeploymentSpec.model_validate(
        {**OWNER["spec"], "autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 6}})
    deployment = build_deployment(with_spec(spec), ModelVersion("iris-classifier", 1, RUNTIME),
                                  SETTINGS)
    assert "replicas" not in deployment["spec"]
    autoscaler = build_autoscaler(with_spec(spec))
    assert (autoscaler["spec"]["minReplicas"], autoscaler["spec"]["maxReplicas"]) == (2, 6)
    port = build_service(DEPLOYMENT)["spec"]["ports"][0]
    assert port["targetPort"] == environment.SERVING_PORT_NAME


def deployment(version: int, ready: int, updated: int, total: int) -> dict[str, Any]:
    built = build_deployment(DEPLOYMENT, ModelVersion("iris-classifier", version, RUNTIME),
                             SETTINGS)
    built["metadata"]["generation"] = 5
    built["status"] = {"observedGeneration": 5, "readyReplicas": ready,
                       "updatedReplicas": updated, "replicas": total}
    return built


def conditions(status: dict[str, Any]) -> dict[str, str]:
    return {c["type"]: c["status"] for c in status["conditions"]}


def test_status_during_and_after_a_rollout() -> None:
    serving_one = outcome_status(None, deployment(1, ready=2, updated=2, total=2))
    assert serving_one["servedVersion"] == 1 and serving_one["phase"] == "Available"
    assert conditions(serving_one)["Ready"] == "True"

    rolling = outcome_status(serving_one, deployment(2, ready=2, updated=1, total=3))
    assert rolling["servedVersion"] == 1, "the old version serves until the rollout completes"
    assert conditions(rolling)["Progressing"] == "True"
    assert conditions(rolling)["Available"] == "True"
    assert [r["version"] for r in rolling["history"]] == [2, 1]

    done = outcome_status(rolling, deployment(2, ready=2, updated=2, total=2))
    assert done["servedVersion"] == 2 and done["history"][0]["completedAt"]
    assert done["selector"] == "mlcycle.dev/model-deployment=iris,mlcycle.dev/component=serve"


UNTRUSTED_IMAGE = {**OWNER, "spec": {**OWNER["spec"], "image": "elsewhere.example/serve:1"}}


def test_an_invalid_or_disallowed_spec_is_refused_before_any_deployment() -> None:
    assert spec_refusal(DEPLOYMENT, SETTINGS) is None
    refusal = spec_refusal(parse_model_deployment(UNTRUSTED_IMAGE), SETTINGS)
    assert refusal is not None and refusal[0] == "ImageNotAllowed"
    assert refusal[1].startswith("spec.image: 'elsewhere.example/serve:1' is not on")
    invalid = parse_model_deployment({**OWNER, "spec": {"model": {"name": "iris"}}})
    refusal = spec_refusal(invalid, SETTINGS)
    assert refusal is not None and refusal[0] == "InvalidSpec"
    assert "exactly one of version, alias" in refusal[1]


def test_deployment_events_do_not_lift_a_refusal_of_this_generation() -> None:
    def with_degraded(status: str, generation: int) -> ModelDeployment:
        parsed = parse_model_deployment({**OWNER, "status": {"conditions": [{
            "type": "Degraded", "status": status, "reason": "RuntimeMismatch",
            "observedGeneration": generation, "lastTransitionTime": "2026-11-30T00:00:00Z"}]}})
        assert not isinstance(parsed, Invalid)
        return parsed

    assert reports_deployment_events(DEPLOYMENT, SETTINGS)
    assert not reports_deployment_events(with_degraded("True", 3), SETTINGS)
    assert reports_deployment_events(with_degraded("True", 2), SETTINGS)  # an older spec
    assert reports_deployment_events(with_degraded("False", 3), SETTINGS)
    assert not reports_deployment_events(parse_model_deployment(UNTRUSTED_IMAGE), SETTINGS)


def test_runtime_mismatch_names_both_versions() -> None:
    assert runtime_mismatch(RUNTIME, RUNTIME) is None
    message = runtime_mismatch({**RUNTIME, "sklearn": "1.0.2"}, RUNTIME)
    assert message == "sklearn 1.0.2 (trained) != 1.9.1 (serving)"
    missing = runtime_mismatch({"python": "3.11.7"}, RUNTIME)
    assert missing is not None and "sklearn, numpy" in missing
    assert parse_runtime("python=3.11.7, sklearn=1.9.1,numpy=2.4.6") == RUNTIME
