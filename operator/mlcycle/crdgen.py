"""CustomResourceDefinitions generated from the pydantic API types in mlcycle_contract.api.

`python -m mlcycle.crdgen` writes crds/<plural>.mlcycle.dev.yaml and the Helm chart's
templates/crds/<plural>.mlcycle.dev.yaml (the same CRD, gated by `crds.enabled`, kept on
uninstall when `crds.keep`); `--check` only compares and exits 1 listing the files that
differ. The functions are pure: they turn models into CRD dicts and YAML text, so the
tests can reuse them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from mlcycle_contract.api.common import ApiModel, CelRule, cel_list
from mlcycle_contract.api.kinds import RESOURCES
from mlcycle_contract.api.resource import PrinterColumn, ResourceDefinition
from mlcycle_contract.constants import API_GROUP, API_VERSION, CATEGORY

HEADER = (
    "# generated from mlcycle_contract.api — do not edit; "
    "run `python -m mlcycle.crdgen` to update\n"
)
DEFAULT_OUTPUT_DIR = Path(__file__).resolve().parents[2] / "crds"
DEFAULT_CHART_DIR = Path(__file__).resolve().parents[2] / "charts/mlcycle/templates/crds"

Schema = dict[str, Any]

# JSON schema keywords that pass through unchanged into a CRD's OpenAPI v3 schema.
_PASSTHROUGH_KEYWORDS = frozenset(
    {
        "type",
        "format",
        "description",
        "required",
        "enum",
        "default",
        "minimum",
        "maximum",
        "minLength",
        "maxLength",
        "pattern",
        "minItems",
        "maxItems",
        "minProperties",
        "maxProperties",
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-int-or-string",
        "x-kubernetes-list-type",
        "x-kubernetes-list-map-keys",
        "x-kubernetes-validations",
    }
)


class CrdSchemaError(ValueError):
    """A model uses a JSON schema construct that has no structural-schema equivalent."""


class _CrdJsonSchema(GenerateJsonSchema):
    """Pydantic's generator, plus `default: {}` on nested models built by a default_factory.

    The apiserver then fills in the nested model's own defaults, so an omitted section
    reads back fully defaulted, as the operator sees it.
    """

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        factory = schema.get("default_factory")
        if isinstance(factory, type) and issubclass(factory, BaseModel):
            return {**self.generate_inner(schema["schema"]), "default": {}}
        return super().default_schema(schema)


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> Schema:
    """`override` wins, except that CEL rules of both are kept."""
    merged = {**base, **override}
    rules = [
        *base.get("x-kubernetes-validations", []),
        *override.get("x-kubernetes-validations", []),
    ]
    if rules:
        merged["x-kubernetes-validations"] = rules
    return merged


def _resolve(node: Mapping[str, Any], defs: Mapping[str, Schema]) -> Schema:
    """Inline `$ref`s and drop the `null` branch of optional fields.

    Keywords at the referencing site (a field's description, default, CEL rules) win over
    the referenced definition's.
    """
    resolved = dict(node)
    while True:
        if "$ref" in resolved:
            name = resolved.pop("$ref").removeprefix("#/$defs/")
            resolved = _merge(defs[name], resolved)
        elif "allOf" in resolved and len(resolved["allOf"]) == 1:
            (inner,) = resolved.pop("allOf")
            resolved = _merge(inner, resolved)
        elif "anyOf" in resolved and not resolved.get("x-kubernetes-int-or-string"):
            branches = [b for b in resolved.pop("anyOf") if b != {"type": "null"}]
            if len(branches) != 1:
                raise CrdSchemaError(f"a union is not structural: {branches}")
            resolved = _merge(branches[0], resolved)
            if "default" in resolved and resolved["default"] is None:
                del resolved["default"]
        else:
            return resolved


def _keys_rule(key_schema: Schema) -> Schema:
    """A CEL rule standing in for `propertyNames`, which structural schemas lack."""
    allowed = key_schema.get("enum")
    if allowed is None or set(key_schema) - {"enum", "type", "description", "title"}:
        raise CrdSchemaError(f"only enum map keys are supported, got {key_schema}")
    return CelRule(
        rule=f"self.all(k, k in {cel_list(allowed)})",
        message=f"keys must be one of: {', '.join(allowed)}",
    ).to_schema()


def structural_schema(node: Mapping[str, Any], defs: Mapping[str, Schema]) -> Schema:
    """A pydantic JSON schema node as a Kubernetes structural OpenAPI v3 schema."""
    resolved = _resolve(node, defs)
    result: Schema = {}
    for keyword, value in resolved.items():
        if keyword == "properties":
            result[keyword] = {name: structural_schema(sub, defs) for name, sub in value.items()}
        elif keyword == "items":
            result[keyword] = structural_schema(value, defs)
        elif keyword == "additionalProperties":
            if value is True:
                raise CrdSchemaError("free-form maps must use FreeFormObject")
            if value is not False:  # `false` (extra="forbid"): the apiserver prunes anyway
                result[keyword] = structural_schema(value, defs)
        elif keyword == "propertyNames":
            rule = _keys_rule(_resolve(value, defs))
            result["x-kubernetes-validations"] = [*result.get("x-kubernetes-validations", []), rule]
        elif keyword in ("exclusiveMinimum", "exclusiveMaximum"):
            # JSON Schema 2020-12 gives the bound; OpenAPI v3.0 a flag next to minimum/maximum.
            result["minimum" if keyword == "exclusiveMinimum" else "maximum"] = value
            result[keyword] = True
        elif keyword == "anyOf":  # int-or-string: left as Kubernetes spells it
            result[keyword] = value
        elif keyword == "title":
            continue
        elif keyword in _PASSTHROUGH_KEYWORDS:
            if keyword == "x-kubernetes-validations":
                value = [*value, *result.get(keyword, [])]
            result[keyword] = value
        else:
            raise CrdSchemaError(f"JSON schema keyword {keyword!r} has no CRD equivalent")
    if "enum" in result and result.get("type") == "string":
        # Bounds the strings for the apiserver's CEL cost estimate.
        result.setdefault("maxLength", max(len(value) for value in result["enum"]))
    untyped_allowed = "x-kubernetes-preserve-unknown-fields" in result or (
        "x-kubernetes-int-or-string" in result
    )
    if "type" not in result and not untyped_allowed:
        raise CrdSchemaError(f"schema node without a type: {resolved}")
    return result


def model_schema(model: type[ApiModel]) -> Schema:
    """The structural schema of one API model, all definitions inlined."""
    json_schema = model.model_json_schema(
        by_alias=True, mode="validation", schema_generator=_CrdJsonSchema
    )
    defs = json_schema.pop("$defs", {})
    return structural_schema(json_schema, defs)


def _printer_column(column: PrinterColumn) -> Schema:
    entry: Schema = {
        "name": column.name,
        "type": column.type,
        "jsonPath": column.json_path,
        "description": column.description,
    }
    if column.priority:
        entry["priority"] = column.priority
    return entry


def build_crd(resource: ResourceDefinition) -> Schema:
    """The apiextensions.k8s.io/v1 CustomResourceDefinition of one kind."""
    names = resource.names
    subresources: Schema = {"status": {}}
    if resource.scale is not None:
        subresources["scale"] = {
            "specReplicasPath": resource.scale.spec_replicas_path,
            "statusReplicasPath": resource.scale.status_replicas_path,
            "labelSelectorPath": resource.scale.label_selector_path,
        }
    root_schema: Schema = {
        "type": "object",
        "description": resource.description,
        "properties": {
            "apiVersion": {"type": "string", "description": "Versioned schema of this object."},
            "kind": {"type": "string", "description": "REST resource this object represents."},
            "metadata": {"type": "object"},
            "spec": model_schema(resource.spec),
            "status": model_schema(resource.status),
        },
        "required": ["spec"],
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": names.crd_name},
        "spec": {
            "group": API_GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": names.kind,
                "listKind": names.list_kind,
                "plural": names.plural,
                "singular": names.singular,
                "shortNames": list(names.short_names),
                "categories": [CATEGORY],
            },
            "versions": [
                {
                    "name": API_VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": root_schema},
                    "subresources": subresources,
                    "additionalPrinterColumns": [
                        _printer_column(c) for c in resource.printer_columns
                    ],
                }
            ],
        },
    }


def build_crds() -> list[Schema]:
    """The CRDs of every mlcycle kind, in a stable order."""
    return [build_crd(resource) for resource in RESOURCES]


def render_crd(crd: Mapping[str, Any]) -> str:
    """YAML text of a CRD: keys sorted, long strings unwrapped, with the generated-file header."""
    body = yaml.safe_dump(dict(crd), sort_keys=True, width=1 << 16, allow_unicode=True)
    return HEADER + body


def crd_file_name(crd: Mapping[str, Any]) -> str:
    return f"{crd['metadata']['name']}.yaml"


def rendered_files() -> dict[str, str]:
    """File name -> content of every generated CRD file."""
    return {crd_file_name(crd): render_crd(crd) for crd in build_crds()}


def render_chart_crd(crd: Mapping[str, Any]) -> str:
    """A Helm template of the CRD: rendered only when `crds.enabled`, with the chart's labels,
    and kept by `helm uninstall` when `crds.keep` (Helm never upgrades a chart's native
    `crds/` folder, so the chart ships its CRDs as templates)."""
    spec = yaml.safe_dump({"spec": crd["spec"]}, sort_keys=True, width=1 << 16,
                          allow_unicode=True)
    if "{{" in spec:
        raise CrdSchemaError("a CRD schema contains '{{', which Helm would read as a template")
    return (
        HEADER
        + "{{- if .Values.crds.enabled }}\n"
        + f"apiVersion: {crd['apiVersion']}\n"
        + f"kind: {crd['kind']}\n"
        + "metadata:\n"
        + f"  name: {crd['metadata']['name']}\n"
        + "  labels:\n"
        + '    {{- include "mlcycle.labels" . | nindent 4 }}\n'
        + "  {{- if .Values.crds.keep }}\n"
        + "  annotations:\n"
        + "    helm.sh/resource-policy: keep\n"
        + "  {{- end }}\n"
        + spec
        + "{{- end }}\n"
    )


def rendered_chart_files() -> dict[str, str]:
    """File name -> content of every generated CRD template of the Helm chart."""
    return {crd_file_name(crd): render_chart_crd(crd) for crd in build_crds()}


def differing(output_dir: Path, expected: Mapping[str, str]) -> list[str]:
    """Files of `expected` missing or different in `output_dir`, and stale files of our API
    group there (files of other groups are left alone)."""
    changed = [
        name
        for name, text in expected.items()
        if not (output_dir / name).is_file() or (output_dir / name).read_text("utf-8") != text
    ]
    stale = [
        path.name
        for path in sorted(output_dir.glob(f"*.{API_GROUP}.yaml"))
        if path.name not in expected
    ]
    return changed + stale


def write(output_dir: Path, expected: Mapping[str, str]) -> list[str]:
    """Write the files that differ, remove stale ones; returns the names of files changed."""
    changed = differing(output_dir, expected)
    output_dir.mkdir(parents=True, exist_ok=True)
    for name in changed:
        if name in expected:
            (output_dir / name).write_text(expected[name], "utf-8")
        else:
            (output_dir / name).unlink()
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlcycle.crdgen", description=__doc__)
    parser.add_argument(
        "--check", action="store_true", help="compare only; exit 1 listing files that differ"
    )
    parser.add_argument("--output-dir", type=Path, default=DEFAULT_OUTPUT_DIR)
    parser.add_argument("--chart-dir", type=Path, default=DEFAULT_CHART_DIR,
                        help="the Helm chart's CRD templates")
    args = parser.parse_args(argv)
    targets = [(args.output_dir, rendered_files()), (args.chart_dir, rendered_chart_files())]
    if args.check:
        stale = [directory / name for directory, expected in targets
                 for name in differing(directory, expected)]
        for path in stale:
            print(f"{path} differs from mlcycle_contract.api; run python -m mlcycle.crdgen")
        return 1 if stale else 0
    for directory, expected in targets:
        for name in write(directory, expected):
            print(f"updated {directory / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
