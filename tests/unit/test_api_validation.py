"""Valid and invalid specs of each kind, checked against the pydantic models.

The same tables describe what the apiserver must accept and reject: `apiserver=False`
marks the few rules CEL cannot express, which only the operator enforces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import ValidationError

from mlcycle.crdgen import build_crds
from mlcycle_contract.api.common import ApiModel
from mlcycle_contract.api.dataset import DatasetSpec
from mlcycle_contract.api.modeldeployment import ModelDeploymentSpec
from mlcycle_contract.api.trainingjob import TrainingJobSpec

SPEC_MODELS: dict[str, type[ApiModel]] = {
    "Dataset": DatasetSpec,
    "TrainingJob": TrainingJobSpec,
    "ModelDeployment": ModelDeploymentSpec,
}

VALID_SPECS: list[tuple[str, dict[str, Any]]] = [
    ("Dataset", {"source": {"builtin": "iris"}, "target": "target"}),
    (
        "Dataset",
        {
            "source": {"url": "https://example.com/data/houses.parquet"},
            "format": "parquet",
            "target": "price",
            "features": ["rooms", "area"],
            "split": {"testFraction": 0.25, "seed": 7, "stratify": False},
            "profile": {"enabled": False},
            "refreshInterval": "1h30m",
        },
    ),
    ("Dataset", {"source": {"s3": "s3://datasets/churn/2026.csv"}, "target": "churned"}),
    (
        "TrainingJob",
        {
            "datasetRef": {"name": "iris"},
            "algorithm": "random_forest_classifier",
            "hyperparameters": {"n_estimators": 50, "max_depth": 5},
            "objective": {"metric": "f1_macro", "direction": "maximize"},
            "validation": {
                "folds": 0,
                "gates": [
                    {"metric": "accuracy", "op": ">=", "threshold": 0.9},
                    {"metric": "latency_p99_ms", "op": "<", "threshold": 50},
                ],
            },
            "search": {
                "maxTrials": 10,
                "parallelism": 2,
                "sampler": "cmaes",
                "pruner": "hyperband",
                "maxFailedTrials": 3,
                "timeout": "30m",
                "goal": 0.99,
                "seed": 7,
                "space": {
                    "random_forest_classifier": {
                        "n_estimators": {"type": "int", "low": 10, "high": 200, "log": True},
                        "max_depth": {"type": "categorical", "choices": [None, 3, 5]},
                    }
                },
            },
            "registry": {"modelName": "iris-rf", "alias": "champion"},
            "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": 2}},
            "schedule": "0 3 * * *",
            "retrain": {"onNewData": True, "onDrift": True},
            "backoffLimit": 0,
            "activeDeadlineSeconds": 3600,
        },
    ),
    (
        "TrainingJob",
        {
            "datasetRef": {"name": "houses", "version": "3f2a9c1b7e4d"},
            "task": "regression",
            "objective": {"metric": "rmse"},
            "search": {
                "sampler": "grid",
                "algorithms": ["ridge"],
                "space": {"ridge": {"alpha": {"type": "categorical", "choices": [0.1, 1.0]}}},
            },
        },
    ),
    ("ModelDeployment", {"model": {"name": "iris-rf", "alias": "champion"}}),
    (
        "ModelDeployment",
        {
            "model": {"name": "iris-rf", "version": 3},
            "replicas": 0,
            "autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 2},
            "rollout": {"maxSurge": 1, "maxUnavailable": "10%"},
            "serving": {"maxBatchSize": 1, "maxBatchWaitMs": 0, "workers": 4},
            "pollIntervalSeconds": 5,
            "image": "registry.local/mlcycle-serving:dev",
            "monitoring": {"drift": True},
        },
    ),
]


@dataclass(frozen=True)
class InvalidCase:
    """A spec that must be rejected.

    `field` is the path (below `spec`) the error points at; `message`, when given, is
    the wording shared by the CEL rule and the pydantic validator.
    """

    kind: str
    spec: dict[str, Any]
    field: str
    message: str | None = None
    apiserver: bool = True


_DS = {"source": {"builtin": "iris"}, "target": "target"}
_TJ: dict[str, Any] = {"datasetRef": {"name": "iris"}, "algorithm": "svc"}
_MD: dict[str, Any] = {"model": {"name": "iris", "version": 1}}


def _int_param(**overrides: Any) -> dict[str, Any]:
    return {"type": "int", "low": 1, "high": 10, **overrides}


INVALID_CASES: list[InvalidCase] = [
    InvalidCase("Dataset", {**_DS, "source": {}}, "source", "exactly one of url, s3, builtin"),
    InvalidCase(
        "Dataset",
        {**_DS, "source": {"builtin": "iris", "url": "https://x.org/a.csv"}},
        "source",
        "exactly one of url, s3, builtin",
    ),
    InvalidCase("Dataset", {**_DS, "source": {"url": "ftp://x.org/a.csv"}}, "source.url"),
    InvalidCase("Dataset", {**_DS, "source": {"s3": "s3://B/key"}}, "source.s3"),
    InvalidCase("Dataset", {**_DS, "source": {"builtin": "mnist"}}, "source.builtin"),
    InvalidCase("Dataset", {**_DS, "format": "json"}, "format"),
    InvalidCase("Dataset", {"source": {"builtin": "iris"}}, "target"),
    InvalidCase("Dataset", {**_DS, "split": {"testFraction": 0.6}}, "split.testFraction"),
    InvalidCase("Dataset", {**_DS, "split": {"seed": -1}}, "split.seed"),
    InvalidCase(
        "Dataset", {**_DS, "features": ["a", "target"]}, "features", "the target column must not"
    ),
    InvalidCase("Dataset", {**_DS, "features": ["a", "a"]}, "features"),
    InvalidCase("Dataset", {**_DS, "refreshInterval": "10s"}, "refreshInterval", "at least 1m"),
    InvalidCase("Dataset", {**_DS, "refreshInterval": "1d"}, "refreshInterval"),
    InvalidCase("TrainingJob", {"algorithm": "svc"}, "datasetRef"),
    InvalidCase("TrainingJob", {**_TJ, "datasetRef": {"name": "Iris_1"}}, "datasetRef.name"),
    InvalidCase(
        "TrainingJob",
        {"datasetRef": {"name": "iris"}},
        "",
        "set exactly one of algorithm and search.algorithms",
    ),
    InvalidCase(
        "TrainingJob",
        {**_TJ, "search": {"algorithms": ["svc"]}},
        "",
        "set exactly one of algorithm and search.algorithms",
    ),
    InvalidCase("TrainingJob", {**_TJ, "algorithm": "xgboost"}, "algorithm"),
    InvalidCase("TrainingJob", {**_TJ, "task": "regression"}, "task", "task does not match"),
    InvalidCase(
        "TrainingJob",
        {**_TJ, "objective": {"metric": "rmse"}},
        "objective.metric",
        "objective.metric does not fit",
    ),
    InvalidCase(
        "TrainingJob",
        {**_TJ, "objective": {"metric": "accuracy", "direction": "minimize"}},
        "objective.direction",
        "are minimized",
    ),
    InvalidCase(
        "TrainingJob",
        {**_TJ, "validation": {"gates": [{"metric": "r2", "op": ">=", "threshold": 0.5}]}},
        "validation.gates",
        "a gate's metric does not fit",
    ),
    InvalidCase(
        "TrainingJob",
        {**_TJ, "validation": {"gates": [{"metric": "accuracy", "op": "==", "threshold": 1}]}},
        "validation.gates.0.op",
    ),
    InvalidCase(
        "TrainingJob", {**_TJ, "validation": {"folds": 1}}, "validation.folds", "must be 0"
    ),
    InvalidCase("TrainingJob", {**_TJ, "validation": {"folds": 21}}, "validation.folds"),
    InvalidCase(
        "TrainingJob", {**_TJ, "validation": {"holdoutFraction": 0.9}}, "validation.holdoutFraction"
    ),
    InvalidCase("TrainingJob", {**_TJ, "search": {"maxTrials": 0}}, "search.maxTrials"),
    InvalidCase("TrainingJob", {**_TJ, "search": {"parallelism": 21}}, "search.parallelism"),
    InvalidCase("TrainingJob", {**_TJ, "search": {"sampler": "bayes"}}, "search.sampler"),
    InvalidCase("TrainingJob", {**_TJ, "search": {"pruner": "asha"}}, "search.pruner"),
    InvalidCase("TrainingJob", {**_TJ, "search": {"timeout": "1d"}}, "search.timeout"),
    InvalidCase("TrainingJob", {**_TJ, "search": {"maxFailedTrials": -1}},
                "search.maxFailedTrials"),
    # An empty space, for the search or for one algorithm.
    InvalidCase("TrainingJob", {**_TJ, "search": {"space": {}}}, "search.space"),
    InvalidCase("TrainingJob", {**_TJ, "search": {"space": {"svc": {}}}}, "search.space.svc"),
    # A goal beyond the best value the objective can take, for its direction.
    InvalidCase("TrainingJob", {**_TJ, "search": {"goal": 1.5}}, "", "can never be reached"),
    InvalidCase(
        "TrainingJob",
        {**_TJ, "objective": {"metric": "log_loss"}, "search": {"goal": -0.1}},
        "",
        "can never be reached",
    ),
    InvalidCase(
        "TrainingJob",
        {**_TJ, "search": {"space": {"ridge": {"alpha": _int_param()}}}},
        "search.space",
        "search.space may only name the algorithms being trained",
    ),
    InvalidCase(
        "TrainingJob",
        {**_TJ, "search": {"space": {"xgboost": {"eta": _int_param()}}}},
        "search.space",
    ),
    InvalidCase(
        "TrainingJob",
        {**_TJ, "search": {"sampler": "grid", "space": {"svc": {"C": _int_param()}}}},
        "search.sampler",
        "grid search takes one algorithm whose parameters are categorical or have a step",
    ),
    InvalidCase(
        "TrainingJob",
        {"datasetRef": {"name": "iris"}, "search": {"sampler": "grid", "algorithms": ["svc",
                                                                                  "gaussian_nb"]}},
        "search.sampler",
        "grid search takes one algorithm whose parameters are categorical or have a step",
    ),
    InvalidCase(
        "TrainingJob",
        {**_TJ, "search": {"space": {"svc": {"C": {"type": "categorical", "low": 1}}}}},
        "search.space.svc.C",
        "a categorical parameter takes choices",
    ),
    InvalidCase(
        "TrainingJob",
        {**_TJ, "search": {"space": {"svc": {"C": {"type": "float", "low": 1}}}}},
        "search.space.svc.C",
        "low <= high",
    ),
    InvalidCase(
        "TrainingJob",
        {**_TJ, "search": {"space": {"svc": {"C": _int_param(low=5, high=1)}}}},
        "search.space.svc.C",
        "low <= high",
    ),
    InvalidCase(
        "TrainingJob",
        {**_TJ, "search": {"space": {"svc": {"C": _int_param(low=0, log=True)}}}},
        "search.space.svc.C.low",
        "a log-scale parameter needs low > 0",
    ),
    InvalidCase(
        "TrainingJob",
        {"datasetRef": {"name": "iris"}, "search": {"algorithms": ["svr", "svc"]}},
        "search.algorithms",
        "all algorithms must solve the same task",
    ),
    InvalidCase(
        "TrainingJob",
        {"datasetRef": {"name": "iris"}, "search": {"algorithms": []}},
        "search.algorithms",
    ),
    InvalidCase("TrainingJob", {**_TJ, "registry": {"modelName": "Iris_RF"}}, "registry.modelName"),
    InvalidCase(
        "TrainingJob",
        {**_TJ, "registry": {"alias": "latest"}},
        "registry.alias",
        "reserved by MLflow",
    ),
    InvalidCase("TrainingJob", {**_TJ, "registry": {"alias": "v3"}}, "registry.alias", "reserved"),
    InvalidCase("TrainingJob", {**_TJ, "backoffLimit": 11}, "backoffLimit"),
    InvalidCase("TrainingJob", {**_TJ, "activeDeadlineSeconds": 0}, "activeDeadlineSeconds"),
    InvalidCase("TrainingJob", {**_TJ, "schedule": "every day"}, "schedule"),
    InvalidCase(
        "TrainingJob", {**_TJ, "resources": {"requests": {"cpu": "lots"}}}, "resources.requests.cpu"
    ),
    InvalidCase(
        "TrainingJob", {**_TJ, "preprocessing": {"scaling": "robust"}}, "preprocessing.scaling"
    ),
    # Rules CEL cannot express (free-form JSON is invisible to it): the operator's alone.
    InvalidCase(
        "TrainingJob",
        {
            "datasetRef": {"name": "iris"},
            "search": {"algorithms": ["svc"]},
            "hyperparameters": {"C": 1},
        },
        "",
        "hyperparameters apply to spec.algorithm",
        apiserver=False,
    ),
    InvalidCase(
        "TrainingJob",
        {**_TJ, "search": {"space": {"svc": {"C": {"type": "categorical"}}}}},
        "search.space.svc.C",
        "a categorical parameter takes choices",
        apiserver=False,
    ),
    InvalidCase(
        "TrainingJob",
        {**_TJ, "search": {"space": {"svc": {"C": _int_param(low=0.5)}}}},
        "search.space.svc.C",
        "integer low and high",
        apiserver=False,
    ),
    InvalidCase("ModelDeployment", {}, "model"),
    InvalidCase(
        "ModelDeployment",
        {"model": {"name": "iris", "version": 1, "alias": "champion"}},
        "model",
        "exactly one of version, alias",
    ),
    InvalidCase(
        "ModelDeployment", {"model": {"name": "iris"}}, "model", "exactly one of version, alias"
    ),
    InvalidCase("ModelDeployment", {"model": {"name": "iris", "version": 0}}, "model.version"),
    InvalidCase("ModelDeployment", {"model": {"name": "Iris", "version": 1}}, "model.name"),
    InvalidCase("ModelDeployment", {**_MD, "replicas": 101}, "replicas"),
    InvalidCase(
        "ModelDeployment",
        {**_MD, "autoscaling": {"minReplicas": 5, "maxReplicas": 2}},
        "autoscaling.maxReplicas",
        "maxReplicas must be at least minReplicas",
    ),
    InvalidCase(
        "ModelDeployment",
        {**_MD, "autoscaling": {"targetCPUUtilization": 0}},
        "autoscaling.targetCPUUtilization",
    ),
    InvalidCase(
        "ModelDeployment", {**_MD, "serving": {"maxBatchSize": 5000}}, "serving.maxBatchSize"
    ),
    InvalidCase(
        "ModelDeployment", {**_MD, "serving": {"maxBatchWaitMs": -1}}, "serving.maxBatchWaitMs"
    ),
    InvalidCase("ModelDeployment", {**_MD, "pollIntervalSeconds": 1}, "pollIntervalSeconds"),
    InvalidCase("ModelDeployment", {**_MD, "rollout": {"maxSurge": "lots"}}, "rollout.maxSurge"),
    InvalidCase("ModelDeployment", {**_MD, "image": "has space"}, "image"),
]


_LOC_MARKERS = {"int", "str"}


def _error_paths(error: ValidationError) -> list[str]:
    """Error locations as dotted wire paths, without pydantic's union-branch and key markers."""
    paths = []
    for detail in error.errors():
        parts = [str(p) for p in detail["loc"]]
        paths.append(".".join(p for p in parts if p not in _LOC_MARKERS and "[" not in p))
    return paths


@pytest.mark.parametrize(
    ("kind", "spec"), VALID_SPECS, ids=lambda v: v if isinstance(v, str) else ""
)
def test_valid_spec_parses_and_round_trips(kind: str, spec: dict[str, Any]) -> None:
    model = SPEC_MODELS[kind].model_validate(spec)
    wire = model.to_wire()
    assert SPEC_MODELS[kind].model_validate(wire) == model
    for key in spec:
        assert key in wire, f"{key} lost in the round trip"


@pytest.mark.parametrize(
    "case", INVALID_CASES, ids=lambda c: f"{c.kind}:{c.field or 'spec'}:{c.message or ''}"
)
def test_invalid_spec_is_rejected_naming_the_field(case: InvalidCase) -> None:
    with pytest.raises(ValidationError) as raised:
        SPEC_MODELS[case.kind].model_validate(case.spec)
    if case.message is not None:
        assert case.message in str(raised.value)
    else:
        paths = _error_paths(raised.value)
        assert any(p == case.field or p.startswith(f"{case.field}.") for p in paths), raised.value


def _cel_messages() -> str:
    return "\n".join(
        rule["message"]
        for crd in build_crds()
        for rule in _walk_rules(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"])
    )


def _walk_rules(node: Any) -> list[dict[str, str]]:
    if isinstance(node, dict):
        rules = list(node.get("x-kubernetes-validations", []))
        return rules + [r for value in node.values() for r in _walk_rules(value)]
    if isinstance(node, list):
        return [r for value in node for r in _walk_rules(value)]
    return []


@pytest.mark.parametrize(
    "case",
    [c for c in INVALID_CASES if c.message and c.apiserver],
    ids=lambda c: f"{c.kind}:{c.message}",
)
def test_cross_field_rules_have_a_cel_twin_with_the_same_message(case: InvalidCase) -> None:
    assert case.message is not None
    assert case.message in _cel_messages()
