"""Building blocks shared by the three kinds: the base model, conditions, resources, CEL rules.

Field descriptions and docstrings here end up verbatim in the CRD schemas.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    StringConstraints,
    WithJsonSchema,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

# Words that Kubernetes APIs spell as upper-case acronyms inside camelCase names.
_ACRONYMS = {"uri": "URI", "url": "URL", "cpu": "CPU"}


def wire_name(field_name: str) -> str:
    """The camelCase wire name of a snake_case field: `snapshot_uri` -> `snapshotURI`.

    A trailing underscore is dropped, for names that would shadow a BaseModel attribute
    (`schema_` -> `schema`).
    """
    head, *rest = field_name.rstrip("_").split("_")
    return head + "".join(_ACRONYMS.get(word, word.capitalize()) for word in rest)


class ApiModel(BaseModel):
    """Base of every API type: camelCase on the wire, snake_case in Python, no unknown fields."""

    model_config = ConfigDict(
        alias_generator=wire_name,
        populate_by_name=True,
        serialize_by_alias=True,
        extra="forbid",
    )

    def to_wire(self) -> dict[str, Any]:
        """The JSON-compatible dict for the Kubernetes API (camelCase, unset optionals omitted)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


@dataclass(frozen=True)
class CelRule:
    """One `x-kubernetes-validations` entry, evaluated by the apiserver on admission."""

    rule: str
    message: str
    field_path: str | None = None

    def to_schema(self) -> dict[str, str]:
        entry = {"rule": self.rule, "message": self.message}
        if self.field_path is not None:
            entry["fieldPath"] = self.field_path
        return entry


def cel_rules(*rules: CelRule) -> dict[str, Any]:
    """A `json_schema_extra` value that declares CEL rules on a model or field."""
    return {"x-kubernetes-validations": [rule.to_schema() for rule in rules]}


def exactly_one_of(*wire_names: str) -> CelRule:
    """CEL rule: exactly one of the optional fields is set."""
    count = " + ".join(f"(has(self.{name}) ? 1 : 0)" for name in wire_names)
    return CelRule(
        rule=f"{count} == 1", message=f"exactly one of {', '.join(wire_names)} must be set"
    )


def cel_list(values: list[str]) -> str:
    """A CEL list literal of strings."""
    return "[" + ", ".join(f"'{value}'" for value in values) + "]"


@dataclass(frozen=True, eq=False)  # hashed by identity: typing hashes Annotated metadata
class SchemaExtra:
    """`Annotated` marker adding keys (e.g. CEL rules) to a type's JSON schema."""

    extra: Mapping[str, Any]

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(core_schema)
        return {**json_schema, **self.extra}


def check_exactly_one(model: BaseModel, *field_names: str) -> None:
    """The pydantic twin of exactly_one_of (for fields whose wire name is their name)."""
    if sum(getattr(model, name) is not None for name in field_names) != 1:
        raise ValueError(f"exactly one of {', '.join(field_names)} must be set")


# `x-kubernetes-list-type` markers: a set of scalars, and a list of objects keyed by `type`.
LIST_SET: dict[str, Any] = {"x-kubernetes-list-type": "set"}
CONDITION_LIST: dict[str, Any] = {
    "x-kubernetes-list-type": "map",
    "x-kubernetes-list-map-keys": ["type"],
}

# Opens the description of a field the API declares and the operator does not implement yet.
NOT_SUPPORTED_YET = (
    "Not supported yet: the operator refuses a spec that sets it (reason Unsupported). "
)

# A free-form JSON object whose content the operator validates itself.
FreeFormObject = Annotated[
    dict[str, Any],
    WithJsonSchema({"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
]

# Any JSON value (scalar, list or object), e.g. one categorical choice of a hyperparameter.
JsonValue = Annotated[Any, WithJsonSchema({"x-kubernetes-preserve-unknown-fields": True})]

DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"

# An object name within the namespace (RFC 1123 subdomain).
ObjectName = Annotated[
    str, StringConstraints(min_length=1, max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)
]

# Go-style durations without days: `90s`, `15m`, `1h30m`. CEL's duration() parses them too.
DURATION_PATTERN = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"
Duration = Annotated[str, StringConstraints(max_length=32, pattern=DURATION_PATTERN)]
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)")
_DURATION_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> timedelta:
    """A Duration string as a timedelta: `1h30m` -> 90 minutes."""
    if not re.fullmatch(DURATION_PATTERN, text):
        raise ValueError(f"invalid duration {text!r}, expected e.g. 90s, 15m, 1h30m")
    seconds = sum(
        float(amount) * _DURATION_UNIT_SECONDS[unit]
        for amount, unit in _DURATION_PART.findall(text)
    )
    return timedelta(seconds=seconds)


# Standard five-field cron, or one of the @-macros.
CronSchedule = Annotated[
    str,
    StringConstraints(
        max_length=128,
        pattern=r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|(\S+\s+){4}\S+)$",
    ),
]

# A registered model's name; also used in child object names, hence a DNS label.
ModelName = Annotated[
    str, StringConstraints(min_length=1, max_length=63, pattern=DNS_LABEL_PATTERN)
]


def _check_model_alias(alias: str) -> str:
    if alias == "latest" or re.fullmatch(r"v[0-9]+", alias):
        raise ValueError("'latest' and v<number> are reserved by MLflow")
    return alias


# An MLflow registered-model alias such as `champion`.
ModelAlias = Annotated[
    str,
    StringConstraints(min_length=1, max_length=63, pattern=r"^[a-z][a-z0-9_-]*$"),
    AfterValidator(_check_model_alias),
    SchemaExtra(
        cel_rules(
            CelRule(
                rule="self != 'latest' && !self.matches('^v[0-9]+$')",
                message="'latest' and v<number> are reserved by MLflow",
            )
        )
    ),
]

# A container image reference.
ImageReference = Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=r"^\S+$")]

# The same pattern Kubernetes uses for resource.Quantity.
QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|"
    r"([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
Quantity = Annotated[
    int | Annotated[str, StringConstraints(pattern=QUANTITY_PATTERN)],
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
            "x-kubernetes-int-or-string": True,
        }
    ),
]

# An absolute number or a percentage, like a Deployment's maxSurge.
IntOrPercent = Annotated[
    int | Annotated[str, StringConstraints(pattern=r"^[0-9]+%$")],
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": r"^[0-9]+%$",
            "x-kubernetes-int-or-string": True,
        }
    ),
]


class ResourceRequirements(ApiModel):
    """Compute resources of the pods, as in a container's `resources`."""

    requests: dict[str, Quantity] | None = Field(
        default=None, description="Minimum resources, e.g. {cpu: 500m, memory: 1Gi}."
    )
    limits: dict[str, Quantity] | None = Field(
        default=None, description="Maximum resources, e.g. {memory: 2Gi}."
    )


class ConditionStatus(StrEnum):
    """Whether a condition holds."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class ConditionType(StrEnum):
    """Condition types every kind reports; each kind may add its own."""

    READY = "Ready"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"


class Condition(ApiModel):
    """One aspect of the resource's current state, per the Kubernetes API conventions."""

    type: str = Field(
        max_length=316,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
        description="Type of the condition in CamelCase, e.g. Ready.",
    )
    status: ConditionStatus = Field(description="True, False or Unknown.")
    reason: str = Field(
        min_length=1,
        max_length=1024,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        description="Machine-readable CamelCase reason for the last transition.",
    )
    message: str = Field(
        default="", max_length=32768, description="Human-readable details of the transition."
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation the condition was computed from."
    )
    last_transition_time: datetime = Field(
        description="When the status last changed from one value to another."
    )


class ObservedStatus(ApiModel):
    """What every kind's status reports; each kind's docstring names its condition types."""

    observed_generation: int | None = Field(
        default=None, ge=0, description="metadata.generation the status was computed from."
    )
    conditions: list[Condition] = Field(
        default_factory=list, json_schema_extra=CONDITION_LIST, description="Current conditions."
    )


def find_condition(conditions: list[Condition], condition_type: str) -> Condition | None:
    """The condition of the given type, if present."""
    return next((c for c in conditions if c.type == condition_type), None)


def set_condition(conditions: list[Condition], new: Condition) -> list[Condition]:
    """A copy of `conditions` with `new` in place of its type.

    `lastTransitionTime` only moves when the status changes, as the conventions require.
    """
    old = find_condition(conditions, new.type)
    if old is not None and old.status == new.status:
        new = new.model_copy(update={"last_transition_time": old.last_transition_time})
    if old is None:
        return [*conditions, new]
    return [new if c.type == new.type else c for c in conditions]
