"""What the operator hands the trainer through its environment (`mlcycle_contract.environment`),
read and validated once."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from mlcycle_contract.environment import (
    IMAGE,
    NAMESPACE,
    OWNER_NAME,
    OWNER_UID,
    EnvVar,
)
from mlcycle_trainer.errors import INVALID_ENVIRONMENT, INVALID_SPEC, InvalidInput

Model = TypeVar("Model", bound=BaseModel)


def required(var: EnvVar, environ: Mapping[str, str] | None = None) -> str:
    """The value of a variable that must be set, or has a default (the error names it,
    never a value)."""
    value = optional(var, environ)
    if not value:
        raise InvalidInput(INVALID_ENVIRONMENT, f"environment variable {var.name} is not set")
    return value


def optional(var: EnvVar, environ: Mapping[str, str] | None = None) -> str:
    """The value of a variable, or its default."""
    return (os.environ if environ is None else environ).get(var.name, "").strip() or var.default


def model_from_json(
    var: EnvVar, model: type[Model], root: str, environ: Mapping[str, str] | None = None
) -> Model:
    """The API object the operator put into `var` as JSON; an invalid one names its field,
    as `root.path.to.field`."""
    try:
        return model.model_validate_json(required(var, environ))
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in (root, *first["loc"]))
        others = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
        raise InvalidInput(
            INVALID_SPEC, f"{var.name}: {field}: {first['msg']}{others}", field
        ) from exc


@dataclass(frozen=True)
class Owner:
    """The custom resource this pod works for."""

    namespace: str
    name: str
    uid: str
    image: str

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> Owner:
        return cls(
            namespace=optional(NAMESPACE, environ),
            name=required(OWNER_NAME, environ),
            uid=optional(OWNER_UID, environ),
            image=optional(IMAGE, environ),
        )
