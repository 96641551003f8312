"""The MLflow model registry as the operator needs it: which version an alias points at,
the runtime that version was trained in, and its MLmodel file (how it was saved). The only
module that talks to MLflow."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow.artifacts
import yaml
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException, RestException

from mlcycle_contract.environment import runtime_tag
from mlcycle_contract.model_format import MLMODEL_FILE
from mlcycle_contract.runtime import RUNTIME_KEYS


class ModelNotFound(Exception):
    """The registered model, version or alias does not exist (a user error, not transient)."""


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    runtime: dict[str, str]  # python, sklearn, numpy -> version

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


RUNTIME_TAGS = {key: runtime_tag(key) for key in RUNTIME_KEYS}


def resolve(tracking_uri: str, name: str, version: int | None, alias: str | None) -> ModelVersion:
    """Look the model version up; ModelNotFound for user errors, MlflowException otherwise."""
    registry = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    try:
        if alias is not None:
            found = registry.get_model_version_by_alias(name, alias)
        else:
            found = registry.get_model_version(name, str(version))
    except RestException as error:
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            what = f"alias {alias!r}" if alias is not None else f"version {version}"
            raise ModelNotFound(f"registered model {name!r} has no {what}") from error
        raise
    tags = dict(found.tags or {})
    return ModelVersion(
        name=name,
        version=int(found.version),
        runtime={key: tags[tag] for key, tag in RUNTIME_TAGS.items() if tag in tags},
    )


def model_file(tracking_uri: str, model: ModelVersion) -> Any:
    """The version's MLmodel file, parsed but never acted on: the model itself is not read."""
    registry = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    source = registry.get_model_version_download_uri(model.name, str(model.version))
    with tempfile.TemporaryDirectory(prefix="mlmodel-") as scratch:
        path = mlflow.artifacts.download_artifacts(
            artifact_uri=f"{source.rstrip('/')}/{MLMODEL_FILE}", dst_path=scratch,
            tracking_uri=tracking_uri)
        return yaml.safe_load(Path(path).read_text())


__all__ = ["MlflowException", "ModelNotFound", "ModelVersion", "model_file", "resolve"]
