"""The custom resources as the operator reads them: parsed once, at the handler, into typed
objects that reconcilers and builders take, so nothing below a handler looks into a raw body.

A spec that the API types reject still has readable metadata and status: it parses into an
`Invalid` object that carries the problem, so the reconciler can report it on the object.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mlcycle_contract import constants
from mlcycle_contract.api.common import ApiModel
from mlcycle_contract.api.dataset import DatasetSpec, DatasetStatus
from mlcycle_contract.api.modeldeployment import ModelDeploymentSpec, ModelDeploymentStatus
from mlcycle_contract.api.trainingjob import TrainingJobSpec, TrainingJobStatus
from mlcycle_contract.constants import ResourceNames

SpecT = TypeVar("SpecT", bound=ApiModel)
StatusT = TypeVar("StatusT", bound=ApiModel)


class ObjectMeta(BaseModel):
    """The metadata the operator reads; the rest of a body's metadata is ignored."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str
    namespace: str
    uid: str
    generation: int
    annotations: dict[str, str] = Field(default_factory=dict)
    resource_version: str = Field(
        default="", alias="resourceVersion",
        description="The version read: kube.patch_status can write only if it is current.")

    @property
    def requested_at(self) -> str:
        """A user asks for a re-run by setting the requested-at annotation to a new value."""
        return self.annotations.get(constants.ANNOTATION_REQUESTED_AT, "")


@dataclass(frozen=True)
class Object(Generic[StatusT]):
    """What every custom resource has, valid spec or not: its kind, metadata and status."""

    names: ResourceNames
    metadata: ObjectMeta
    status: StatusT


@dataclass(frozen=True)
class Resource(Object[StatusT], Generic[SpecT, StatusT]):
    """A custom resource whose spec the API types accept."""

    spec: SpecT


@dataclass(frozen=True)
class Invalid(Object[StatusT]):
    """A custom resource whose spec the API types reject: why, one `spec.<path>: ...` each."""

    problem: str


def field_errors(error: ValidationError, root: str) -> str:
    """One `<root>.<path>: <problem>` per error, joined by `; `."""
    return "; ".join(
        f"{'.'.join(str(part) for part in (root, *item['loc']))}: {item['msg']}"
        for item in error.errors())


def parse(body: Mapping[str, Any], names: ResourceNames, spec_type: type[SpecT],
          status_type: type[StatusT]) -> Resource[SpecT, StatusT] | Invalid[StatusT]:
    metadata = ObjectMeta.model_validate(body["metadata"])
    status = status_type.model_validate(body.get("status") or {})
    try:
        spec = spec_type.model_validate(body.get("spec") or {})
    except ValidationError as error:
        return Invalid(names, metadata, status, field_errors(error, "spec"))
    return Resource(names, metadata, status, spec)


Dataset = Resource[DatasetSpec, DatasetStatus]
TrainingJob = Resource[TrainingJobSpec, TrainingJobStatus]
ModelDeployment = Resource[ModelDeploymentSpec, ModelDeploymentStatus]


def parse_dataset(body: Mapping[str, Any]) -> Dataset | Invalid[DatasetStatus]:
    return parse(body, constants.DATASET, DatasetSpec, DatasetStatus)


def parse_training_job(body: Mapping[str, Any]) -> TrainingJob | Invalid[TrainingJobStatus]:
    return parse(body, constants.TRAINING_JOB, TrainingJobSpec, TrainingJobStatus)


def parse_model_deployment(
    body: Mapping[str, Any],
) -> ModelDeployment | Invalid[ModelDeploymentStatus]:
    return parse(body, constants.MODEL_DEPLOYMENT, ModelDeploymentSpec, ModelDeploymentStatus)
