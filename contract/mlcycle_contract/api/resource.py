"""What the CRD generator needs to know about a kind besides its spec and status models."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mlcycle_contract.api.common import ApiModel
from mlcycle_contract.constants import ResourceNames

ColumnType = Literal["string", "integer", "number", "boolean", "date"]


@dataclass(frozen=True)
class PrinterColumn:
    """One column of `kubectl get`; priority 1 shows only with `-o wide`."""

    name: str
    type: ColumnType
    json_path: str
    description: str
    priority: int = 0


@dataclass(frozen=True)
class ScaleSubresource:
    """Paths that make `kubectl scale` work on a kind."""

    spec_replicas_path: str
    status_replicas_path: str
    label_selector_path: str


@dataclass(frozen=True)
class ResourceDefinition:
    """A custom resource kind: its names, its models and how kubectl shows it."""

    names: ResourceNames
    description: str
    spec: type[ApiModel]
    status: type[ApiModel]
    printer_columns: tuple[PrinterColumn, ...]
    scale: ScaleSubresource | None = None


READY_COLUMN = PrinterColumn(
    name="Ready",
    type="string",
    json_path='.status.conditions[?(@.type=="Ready")].status',
    description="Status of the Ready condition.",
)
AGE_COLUMN = PrinterColumn(
    name="Age",
    type="date",
    json_path=".metadata.creationTimestamp",
    description="Time since creation.",
)
