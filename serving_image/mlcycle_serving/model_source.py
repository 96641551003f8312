"""Where the model comes from: URI resolution, download, and its recorded runtime.

Runs once at start-up. An alias (`models:/iris@champion`) or `latest` is resolved to
a concrete registered version, so the server keeps serving that version even if the
alias moves (the operator rolls out a new Deployment for that). The runtime the
model was trained in is read from, first match wins: the model version's tags, the
training run's tags and params (`runtime.python`, `runtime.sklearn`, ...), then
the MLmodel file and its requirements.txt.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlcycle_contract.environment import TAG_RUNTIME_PREFIX
from mlcycle_contract.runtime import DISTRIBUTIONS, current_runtime

logger = logging.getLogger(__name__)

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:/")
_PIN = re.compile(r"^\s*([A-Za-z0-9_.\-\[\]]+)\s*==\s*([^\s;#]+)")


class ModelSourceError(RuntimeError):
    """The model URI cannot be resolved or downloaded."""


@dataclass(frozen=True)
class ModelReference:
    """A model URI, and the concrete version it resolved to."""

    uri: str
    resolved_uri: str
    registered_name: str | None = None
    version: str | None = None
    alias: str | None = None
    run_id: str | None = None
    version_tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RuntimeVersions:
    """Versions recorded with the model and those of the serving process."""

    recorded: dict[str, str]
    serving: dict[str, str]
    requirements: dict[str, str]

    @property
    def mismatches(self) -> list[str]:
        """Keys recorded for the model whose value differs in the serving runtime."""
        return sorted(
            key
            for key, value in self.recorded.items()
            if key in self.serving and self.serving[key] != value
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "recorded": self.recorded,
            "serving": self.serving,
            "requirements": self.requirements,
            "mismatches": self.mismatches,
        }


def _client() -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient()


def resolve_model_uri(uri: str) -> ModelReference:
    """Resolve `models:/name@alias` and `models:/name/latest` to a version."""
    if not uri.startswith("models:/"):
        run_id = uri.split("/")[1] if uri.startswith("runs:/") and uri.count("/") >= 2 else None
        return ModelReference(uri=uri, resolved_uri=uri, run_id=run_id)
    path = uri[len("models:/") :].strip("/")
    parts = path.split("/")
    if len(parts) == 1 and "@" not in path:  # models:/<logged model id> (MLflow 3)
        return ModelReference(uri=uri, resolved_uri=uri)
    if len(parts) > 2 or not parts[0]:
        raise ModelSourceError(f"not a model URI: {uri!r}")
    alias: str | None = None
    suffix = ""
    if len(parts) == 1:
        name, alias = path.rsplit("@", 1)
    else:
        name, suffix = parts
        if not suffix.isdigit() and suffix.lower() != "latest":
            raise ModelSourceError(
                f"unsupported model URI {uri!r}: use models:/<name>/<version>, "
                "models:/<name>@<alias> or models:/<name>/latest"
            )
    try:
        client = _client()
        if alias is not None:
            model_version = client.get_model_version_by_alias(name, alias)
        elif suffix.isdigit():
            model_version = client.get_model_version(name, suffix)
        else:
            versions = client.search_model_versions(f"name = '{name}'")
            if not versions:
                raise ModelSourceError(f"registered model {name!r} has no versions")
            model_version = max(versions, key=lambda mv: int(mv.version))
    except ModelSourceError:
        raise
    except Exception as exc:
        raise ModelSourceError(f"cannot resolve {uri!r}: {exc}") from exc
    version = str(model_version.version)
    return ModelReference(
        uri=uri,
        resolved_uri=f"models:/{name}/{version}",
        registered_name=name,
        version=version,
        alias=alias,
        run_id=model_version.run_id or None,
        version_tags=dict(model_version.tags or {}),
    )


def download_model(reference: ModelReference, download_dir: str = "") -> Path:
    """Return a local directory holding the model (downloaded unless already local)."""
    uri = reference.resolved_uri
    local = uri[len("file://") :] if uri.startswith("file://") else uri
    if not _SCHEME.match(local):
        path = Path(local)
        if not (path / "MLmodel").is_file():
            raise ModelSourceError(f"no MLmodel file in {path}")
        return path
    import mlflow.artifacts

    if download_dir:
        os.makedirs(download_dir, exist_ok=True)
    try:
        downloaded = mlflow.artifacts.download_artifacts(
            artifact_uri=uri, dst_path=download_dir or None
        )
    except Exception as exc:
        raise ModelSourceError(f"cannot download {uri!r}: {exc}") from exc
    return Path(downloaded)


def read_requirements(model_dir: Path) -> dict[str, str]:
    """Pinned `name==version` lines of the model's requirements.txt."""
    path = model_dir / "requirements.txt"
    if not path.is_file():
        return {}
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        match = _PIN.match(line)
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


def _runtime_entries(values: dict[str, Any]) -> dict[str, str]:
    return {
        key[len(TAG_RUNTIME_PREFIX) :]: str(value)
        for key, value in values.items()
        if key.startswith(TAG_RUNTIME_PREFIX) and value is not None
    }


def _run_runtime(run_id: str) -> dict[str, str]:
    """`runtime.*` tags and params of the training run (tags win)."""
    try:
        run = _client().get_run(run_id)
    except Exception as exc:
        logger.warning("cannot read runtime of run %s: %s", run_id, exc)
        return {}
    return {**_runtime_entries(dict(run.data.params)), **_runtime_entries(dict(run.data.tags))}


def recorded_runtime(reference: ModelReference, model_dir: Path, mlmodel: Any) -> RuntimeVersions:
    """Combine every place the training runtime may have been recorded."""
    requirements = read_requirements(model_dir)
    recorded: dict[str, str] = {}
    for key, requirement in DISTRIBUTIONS.items():
        if requirement in requirements:
            recorded[key] = requirements[requirement]
    flavors: dict[str, Any] = getattr(mlmodel, "flavors", {}) or {}
    python_version = flavors.get("python_function", {}).get("python_version")
    sklearn_version = flavors.get("sklearn", {}).get("sklearn_version")
    mlflow_version = getattr(mlmodel, "mlflow_version", None)
    for key, value in (
        ("python", python_version),
        ("sklearn", sklearn_version),
        ("mlflow", mlflow_version),
    ):
        if value:
            recorded[key] = str(value)
    run_id = reference.run_id or getattr(mlmodel, "run_id", None)
    if run_id and (reference.registered_name or os.environ.get("MLFLOW_TRACKING_URI")):
        recorded.update(_run_runtime(run_id))
    recorded.update(_runtime_entries(reference.version_tags))
    return RuntimeVersions(recorded=recorded, serving=current_runtime(), requirements=requirements)
