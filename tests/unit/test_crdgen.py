"""The generated CRDs: in sync with the models, structural, and carrying the rules we rely on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import Field

from mlcycle import crdgen
from mlcycle_contract.api.common import ApiModel, ConditionStatus
from mlcycle_contract.api.dataset import BuiltinDataset
from mlcycle_contract.api.kinds import RESOURCES
from mlcycle_contract.api.learning import Algorithm, GateMetric, Metric
from mlcycle_contract.constants import API_GROUP, API_VERSION, CATEGORY

REPO_CRDS = Path(__file__).resolve().parents[2] / "crds"
CRDS = {crd["spec"]["names"]["kind"]: crd for crd in crdgen.build_crds()}


def _schema(kind: str) -> dict[str, Any]:
    schema: dict[str, Any] = CRDS[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _at(kind: str, path: str) -> dict[str, Any]:
    """The schema node at a dotted path like `spec.split.testFraction` ([] steps into items)."""
    node = _schema(kind)
    for step in path.split("."):
        node = node["items"] if step == "[]" else node["properties"][step]
    return node


def _nodes(node: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from _nodes(child, f"{path}.{name}")
    if "items" in node:
        yield from _nodes(node["items"], f"{path}[]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _nodes(node["additionalProperties"], f"{path}{{}}")


def _rules(node: dict[str, Any]) -> list[str]:
    return [entry["rule"] for entry in node.get("x-kubernetes-validations", [])]


def test_committed_crds_match_the_models() -> None:
    differing = crdgen.differing(REPO_CRDS, crdgen.rendered_files())
    assert not differing, f"{differing} out of date: run python -m mlcycle.crdgen"


def test_one_file_per_kind_with_the_generated_header() -> None:
    files = crdgen.rendered_files()
    assert sorted(files) == [
        "datasets.mlcycle.dev.yaml",
        "modeldeployments.mlcycle.dev.yaml",
        "trainingjobs.mlcycle.dev.yaml",
    ]
    for text in files.values():
        assert text.startswith("# generated from mlcycle_contract.api — do not edit")
        assert yaml.safe_load(text) in CRDS.values()


def test_rendering_is_stable() -> None:
    assert crdgen.rendered_files() == crdgen.rendered_files()


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_crd_names_scope_and_subresources(kind: str) -> None:
    crd = CRDS[kind]
    names = crd["spec"]["names"]
    assert crd["metadata"]["name"] == f"{names['plural']}.{API_GROUP}"
    assert crd["spec"]["scope"] == "Namespaced"
    assert names["categories"] == [CATEGORY]
    assert names["listKind"] == f"{kind}List"
    (version,) = crd["spec"]["versions"]
    assert (version["name"], version["served"], version["storage"]) == (API_VERSION, True, True)
    assert version["subresources"]["status"] == {}
    assert _schema(kind)["required"] == ["spec"]


def test_short_names_avoid_built_in_ones() -> None:
    short_names = {kind: crd["spec"]["names"]["shortNames"] for kind, crd in CRDS.items()}
    assert short_names == {"Dataset": ["dset"], "TrainingJob": ["tj"], "ModelDeployment": ["mdep"]}


def test_model_deployment_supports_kubectl_scale() -> None:
    scale = CRDS["ModelDeployment"]["spec"]["versions"][0]["subresources"]["scale"]
    assert scale == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    assert _at("ModelDeployment", "status.selector")["type"] == "string"


@pytest.mark.parametrize(
    ("kind", "columns"),
    [
        ("Dataset", ["Version", "Rows", "Ready", "Age"]),
        ("TrainingJob", ["Phase", "Metric", "Value", "Model Version", "Trials", "Age"]),
        ("ModelDeployment", ["Model", "Served Version", "Ready Replicas", "Ready", "Age"]),
    ],
)
def test_printer_columns(kind: str, columns: list[str]) -> None:
    printed = CRDS[kind]["spec"]["versions"][0]["additionalPrinterColumns"]
    assert [c["name"] for c in printed if not c.get("priority")] == columns
    for column in printed:
        assert column["type"] in {"string", "integer", "number", "boolean", "date"}
        if column["jsonPath"].startswith((".spec.", ".status.")):
            assert _at(kind, column["jsonPath"].split("[")[0].lstrip("."))["type"]


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_schema_is_structural(kind: str) -> None:
    for path, node in _nodes(_schema(kind)):
        assert "$ref" not in node and "$defs" not in node, path
        assert "title" not in node and "nullable" not in node and "oneOf" not in node, path
        assert not ("properties" in node and "additionalProperties" in node), path
        if node.get("x-kubernetes-int-or-string"):
            assert node["anyOf"] == [{"type": "integer"}, {"type": "string"}], path
            continue
        assert "anyOf" not in node, path
        if not node.get("x-kubernetes-preserve-unknown-fields"):
            assert node.get("type") in {"object", "array", "string", "integer", "number", "boolean"}
        if node.get("type") == "array":
            assert "items" in node, path
        if "exclusiveMinimum" in node:
            assert node["exclusiveMinimum"] is True and "minimum" in node, path


@pytest.mark.parametrize("kind", sorted(CRDS))
def test_conditions_follow_the_api_conventions(kind: str) -> None:
    conditions = _at(kind, "status.conditions")
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    item = conditions["items"]
    assert set(item["properties"]) == {
        "type",
        "status",
        "reason",
        "message",
        "observedGeneration",
        "lastTransitionTime",
    }
    assert item["required"] == ["type", "status", "reason", "lastTransitionTime"]
    assert item["properties"]["status"]["enum"] == [s.value for s in ConditionStatus]
    assert item["properties"]["lastTransitionTime"]["format"] == "date-time"
    assert _at(kind, "status.observedGeneration")["type"] == "integer"


@pytest.mark.parametrize(
    ("kind", "path", "values"),
    [
        ("Dataset", "spec.source.builtin", [b.value for b in BuiltinDataset]),
        ("Dataset", "spec.format", ["csv", "parquet"]),
        ("TrainingJob", "spec.algorithm", [a.value for a in Algorithm]),
        ("TrainingJob", "spec.task", ["classification", "regression"]),
        ("TrainingJob", "spec.objective.metric", [m.value for m in Metric]),
        ("TrainingJob", "spec.objective.direction", ["maximize", "minimize"]),
        ("TrainingJob", "spec.validation.gates.[].metric", [m.value for m in GateMetric]),
        ("TrainingJob", "spec.validation.gates.[].op", [">=", "<=", ">", "<"]),
        ("TrainingJob", "spec.preprocessing.scaling", ["none", "standard", "minmax"]),
        ("TrainingJob", "spec.search.sampler", ["tpe", "random", "grid", "cmaes", "qmc"]),
        ("TrainingJob", "spec.search.pruner",
         ["none", "median", "successive_halving", "hyperband"]),
        ("TrainingJob", "status.phase", ["Pending", "Running", "Succeeded", "Failed"]),
    ],
)
def test_enums(kind: str, path: str, values: list[str]) -> None:
    node = _at(kind, path)
    assert node["enum"] == values
    assert node["maxLength"] == max(len(v) for v in values)


@pytest.mark.parametrize(
    ("kind", "path", "minimum", "maximum", "default"),
    [
        ("Dataset", "spec.split.testFraction", 0.05, 0.5, 0.2),
        ("Dataset", "spec.split.seed", 0, 2**32 - 1, 42),
        ("TrainingJob", "spec.validation.folds", 0, 20, 5),
        ("TrainingJob", "spec.validation.holdoutFraction", 0.05, 0.5, None),
        ("TrainingJob", "spec.search.maxTrials", 1, 1000, 20),
        ("TrainingJob", "spec.search.parallelism", 1, 20, 1),
        ("TrainingJob", "spec.backoffLimit", 0, 10, 1),
        ("ModelDeployment", "spec.replicas", 0, 100, 1),
        ("ModelDeployment", "spec.serving.maxBatchSize", 1, 4096, 64),
        ("ModelDeployment", "spec.serving.maxBatchWaitMs", 0, 1000, 2),
        ("ModelDeployment", "spec.pollIntervalSeconds", 5, 3600, 30),
        ("ModelDeployment", "spec.autoscaling.targetCPUUtilization", 1, 100, 80),
    ],
)
def test_bounds_and_defaults(
    kind: str, path: str, minimum: float, maximum: float, default: float | None
) -> None:
    node = _at(kind, path)
    assert (node["minimum"], node["maximum"], node.get("default")) == (minimum, maximum, default)


def test_exclusive_bounds_use_the_openapi_v3_0_form() -> None:
    step = _at("TrainingJob", "spec.search.space")["additionalProperties"]["additionalProperties"]
    assert step["properties"]["step"] == {
        "description": "Grid step (int and float).",
        "type": "number",
        "minimum": 0,
        "exclusiveMinimum": True,
    }


@pytest.mark.parametrize(
    ("kind", "path", "required"),
    [
        ("Dataset", "spec", ["source", "target"]),
        ("TrainingJob", "spec", ["datasetRef"]),
        ("TrainingJob", "spec.datasetRef", ["name"]),
        ("TrainingJob", "spec.objective", ["metric"]),
        ("TrainingJob", "spec.validation.gates.[]", ["metric", "op"]),
        ("ModelDeployment", "spec", ["model"]),
        ("ModelDeployment", "spec.model", ["name"]),
    ],
)
def test_required_fields(kind: str, path: str, required: list[str]) -> None:
    assert _at(kind, path)["required"] == required


@pytest.mark.parametrize(
    ("kind", "path", "max_items"),
    [
        ("Dataset", "status.history", 20),
        ("Dataset", "status.profile.topFeatures", 20),
        ("TrainingJob", "spec.validation.gates", 20),
        ("ModelDeployment", "status.history", 10),
    ],
)
def test_bounded_lists(kind: str, path: str, max_items: int) -> None:
    assert _at(kind, path)["maxItems"] == max_items


def test_nested_sections_default_to_an_empty_object_so_their_defaults_apply() -> None:
    for kind, path in [
        ("Dataset", "spec.split"),
        ("Dataset", "spec.profile"),
        ("TrainingJob", "spec.validation"),
        ("TrainingJob", "spec.preprocessing"),
        ("TrainingJob", "spec.registry"),
        ("TrainingJob", "spec.retrain"),
        ("ModelDeployment", "spec.autoscaling"),
        ("ModelDeployment", "spec.rollout"),
        ("ModelDeployment", "spec.serving"),
        ("ModelDeployment", "spec.monitoring"),
    ]:
        assert _at(kind, path)["default"] == {}, path
    assert "default" not in _at("TrainingJob", "spec.search")
    assert "default" not in _at("TrainingJob", "spec.hyperparameters")


def _apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """What the apiserver's structural defaulting does to `value`."""
    if not isinstance(value, dict) or "properties" not in schema:
        return value
    result = dict(value)
    for name, sub in schema["properties"].items():
        if name not in result and "default" in sub:
            result[name] = sub["default"]
        if name in result:
            result[name] = _apply_defaults(sub, result[name])
    return result


def _contains(big: Any, small: Any) -> bool:
    """Whether `small` is `big` with some keys left out, at any depth."""
    if isinstance(small, dict):
        return isinstance(big, dict) and all(
            key in big and _contains(big[key], value) for key, value in small.items()
        )
    return bool(big == small)


@pytest.mark.parametrize(
    ("resource_index", "minimal"),
    [
        (0, {"source": {"builtin": "iris"}, "target": "target"}),
        (1, {"datasetRef": {"name": "iris"}, "algorithm": "svc", "search": {}}),
        (2, {"model": {"name": "iris", "alias": "champion"}}),
    ],
)
def test_apiserver_defaults_equal_the_model_defaults(
    resource_index: int, minimal: dict[str, Any]
) -> None:
    resource = RESOURCES[resource_index]
    spec_schema = _at(resource.names.kind, "spec")
    defaulted = _apply_defaults(spec_schema, minimal)
    parsed = resource.spec.model_validate(minimal)
    assert resource.spec.model_validate(defaulted) == parsed
    assert _contains(parsed.to_wire(), defaulted)


def test_free_form_and_int_or_string_fields() -> None:
    hyperparameters = _at("TrainingJob", "spec.hyperparameters")
    assert hyperparameters == hyperparameters | {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
    }
    quantity = _at("TrainingJob", "spec.resources.requests")["additionalProperties"]
    assert quantity["x-kubernetes-int-or-string"] is True and "pattern" in quantity
    assert _at("ModelDeployment", "spec.rollout.maxSurge")["default"] == "25%"


def test_cel_rules_sit_where_they_belong() -> None:
    assert _rules(_at("Dataset", "spec.source")) == [
        "(has(self.url) ? 1 : 0) + (has(self.s3) ? 1 : 0) + (has(self.builtin) ? 1 : 0) == 1"
    ]
    assert _rules(_at("ModelDeployment", "spec.model")) == [
        "(has(self.version) ? 1 : 0) + (has(self.alias) ? 1 : 0) == 1"
    ]
    assert _rules(_at("ModelDeployment", "spec.autoscaling")) == [
        "!has(self.minReplicas) || !has(self.maxReplicas) || self.maxReplicas >= self.minReplicas"
    ]
    assert _rules(_at("Dataset", "spec.refreshInterval")) == ["duration(self) >= duration('1m')"]
    assert _rules(_at("TrainingJob", "spec.validation.folds")) == ["self == 0 || self >= 2"]
    spec_rules = _rules(_at("TrainingJob", "spec"))
    assert (
        spec_rules[0] == "has(self.algorithm) != (has(self.search) && has(self.search.algorithms))"
    )
    assert len(spec_rules) == 8
    assert "!has(self.timeZone) || has(self.schedule)" in spec_rules
    # The alias rule is declared once on the type and shows up wherever the type is used.
    assert _rules(_at("TrainingJob", "spec.registry.alias")) == _rules(
        _at("ModelDeployment", "spec.model.alias")
    )


def test_enum_map_keys_become_a_cel_rule() -> None:
    (rule,) = _rules(_at("TrainingJob", "spec.search.space"))
    assert rule.startswith("self.all(k, k in ['logistic_regression', ")


def test_unsupported_constructs_are_refused() -> None:
    class Loose(ApiModel):
        anything: dict[str, Any] = Field(default_factory=dict)

    class Either(ApiModel):
        value: int | str

    with pytest.raises(crdgen.CrdSchemaError, match="FreeFormObject"):
        crdgen.model_schema(Loose)
    with pytest.raises(crdgen.CrdSchemaError, match="union"):
        crdgen.model_schema(Either)


def test_check_lists_missing_changed_and_stale_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert crdgen.main(["--check", "--output-dir", str(tmp_path)]) == 1
    assert len(capsys.readouterr().out.splitlines()) == 3

    assert crdgen.main(["--output-dir", str(tmp_path)]) == 0
    assert crdgen.main(["--check", "--output-dir", str(tmp_path)]) == 0

    edited = tmp_path / "datasets.mlcycle.dev.yaml"
    edited.write_text(edited.read_text() + "# hand edit\n")
    (tmp_path / "olds.mlcycle.dev.yaml").write_text("stale\n")
    capsys.readouterr()
    assert crdgen.main(["--check", "--output-dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "datasets.mlcycle.dev.yaml" in out and "olds.mlcycle.dev.yaml" in out

    assert crdgen.main(["--output-dir", str(tmp_path)]) == 0
    assert not (tmp_path / "olds.mlcycle.dev.yaml").exists()
    assert crdgen.differing(tmp_path, crdgen.rendered_files()) == []
