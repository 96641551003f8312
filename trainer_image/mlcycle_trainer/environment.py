"""What the operator hands the trainer through its environment (names in `contract`)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlcycle_trainer import contract
from mlcycle_trainer.errors import INVALID_ENVIRONMENT, INVALID_SPEC, InvalidInput


def required(name: str, environ: Mapping[str, str] | None = None) -> str:
    """The value of a variable that must be set (the error names it, never a value)."""
    value = (os.environ if environ is None else environ).get(name, "").strip()
    if not value:
        raise InvalidInput(INVALID_ENVIRONMENT, f"environment variable {name} is not set")
    return value


def optional(name: str, environ: Mapping[str, str] | None = None) -> str | None:
    value = (os.environ if environ is None else environ).get(name, "").strip()
    return value or None


def spec_from_json(name: str, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The custom resource spec that the operator put into variable `name`, as a dict."""
    text = required(name, environ)
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            INVALID_SPEC, f"{name} is not valid JSON: {exc.msg} at {exc.pos}"
        ) from exc
    if not isinstance(spec, dict):
        raise InvalidInput(INVALID_SPEC, f"{name} must hold a JSON object")
    return spec


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
            namespace=optional(contract.ENV_NAMESPACE, environ) or "default",
            name=required(contract.ENV_OWNER_NAME, environ),
            uid=optional(contract.ENV_OWNER_UID, environ) or "",
            image=optional(contract.ENV_IMAGE, environ) or "",
        )


def termination_log_path(environ: Mapping[str, str] | None = None) -> str:
    return optional(contract.ENV_TERMINATION_LOG, environ) or contract.DEFAULT_TERMINATION_LOG
