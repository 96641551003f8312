"""The MLflow model registry as the operator needs it: which version an alias points at,
the runtime that version was trained in, and its MLmodel file (how it was saved). The only
module that reads the registry. Models are looked up as the namespace's own MLflow user, so
MLflow's permissions decide what a namespace may serve or register: another namespace's
model is `ModelAccessDenied`."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow.artifacts
import yaml
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.store.model_registry.rest_store import RestStore
from mlflow.utils.rest_utils import MlflowHostCreds

from mlcycle import metrics
from mlcycle_contract.environment import TAG_TRAININGJOB_UID, runtime_tag
from mlcycle_contract.model_format import MLMODEL_FILE
from mlcycle_contract.runtime import RUNTIME_KEYS


class ModelNotFound(Exception):
    """The registered model, version or alias does not exist (a user error, not transient)."""


class ModelAccessDenied(Exception):
    """The namespace's MLflow user may not read the registered model (another's)."""


@dataclass(frozen=True)
class RegistryUser:
    """Who the registry is read as: the namespace's MLflow user."""

    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: int
    runtime: dict[str, str]  # python, sklearn, numpy -> version

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


RUNTIME_TAGS = {key: runtime_tag(key) for key in RUNTIME_KEYS}
# The user's errors, counted apart from the registry's own (mlcycle_registry_requests_total).
USER_ERRORS: dict[type[Exception], str] = {ModelNotFound: metrics.NOT_FOUND,
                                           ModelAccessDenied: metrics.ACCESS_DENIED}


def _store(tracking_uri: str, user: RegistryUser) -> Any:
    """MLflow's registry client (untyped), sending the user's credentials on every call."""
    creds = MlflowHostCreds(  # type: ignore[no-untyped-call]
        tracking_uri, username=user.username, password=user.password)
    return RestStore(lambda: creds)  # type: ignore[no-untyped-call]


def _denied(tracking_uri: str, error: MlflowException, user: RegistryUser,
            name: str) -> ModelAccessDenied | None:
    """MLflow answers PERMISSION_DENIED whether or not the model exists (it tells no one what
    they may not see); the operator, as MLflow's admin, tells the two apart."""
    if error.error_code != "PERMISSION_DENIED" or not _exists(tracking_uri, name):
        return None
    return ModelAccessDenied(f"registered model {name!r} belongs to another namespace: MLflow "
                             f"denies this namespace's user {user.username!r} access to it")


def _exists(tracking_uri: str, name: str) -> bool:
    """As the operator's own MLflow user (the admin, MLFLOW_TRACKING_USERNAME)."""
    admin = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    return bool(admin.search_registered_models(f"name = '{name}'", max_results=1))


@metrics.registry_call("resolve", USER_ERRORS)
def resolve(tracking_uri: str, user: RegistryUser, name: str, version: int | None,
            alias: str | None) -> ModelVersion:
    """Look the model version up; ModelNotFound and ModelAccessDenied for user errors,
    MlflowException otherwise."""
    registry = _store(tracking_uri, user)
    try:
        if alias is not None:
            found = registry.get_model_version_by_alias(name, alias)
        else:
            found = registry.get_model_version(name, str(version))
    except MlflowException as error:
        denied = _denied(tracking_uri, error, user, name)
        if denied is not None:
            raise denied from None
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE",
                                "PERMISSION_DENIED"):
            what = f"alias {alias!r}" if alias is not None else f"version {version}"
            raise ModelNotFound(f"registered model {name!r} has no {what}") from error
        raise
    tags = dict(found.tags or {})
    return ModelVersion(
        name=name,
        version=int(found.version),
        runtime={key: tags[tag] for key, tag in RUNTIME_TAGS.items() if tag in tags},
    )


@metrics.registry_call("check_registrable", USER_ERRORS)
def check_registrable(tracking_uri: str, user: RegistryUser, name: str) -> None:
    """ModelAccessDenied if the registered model exists and is another namespace's; a model
    that does not exist yet is the namespace's to create."""
    try:
        _store(tracking_uri, user).get_registered_model(name)
    except MlflowException as error:
        denied = _denied(tracking_uri, error, user, name)
        if denied is not None:
            raise denied from None
        if error.error_code not in ("RESOURCE_DOES_NOT_EXIST", "PERMISSION_DENIED"):
            raise


@metrics.registry_call("model_file", USER_ERRORS)
def model_file(tracking_uri: str, model: ModelVersion) -> Any:
    """The version's MLmodel file, parsed but never acted on: the model itself is not read."""
    registry = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    source = registry.get_model_version_download_uri(model.name, str(model.version))
    with tempfile.TemporaryDirectory(prefix="mlmodel-") as scratch:
        path = mlflow.artifacts.download_artifacts(
            artifact_uri=f"{source.rstrip('/')}/{MLMODEL_FILE}", dst_path=scratch,
            tracking_uri=tracking_uri)
        return yaml.safe_load(Path(path).read_text())


@dataclass(frozen=True)
class Lineage:
    """Where a model version comes from: its run, and the TrainingJob that trained it (none
    for a version registered outside mlcycle)."""

    run_id: str
    training_job_uid: str | None


@metrics.registry_call("version_lineage", USER_ERRORS)
def version_lineage(tracking_uri: str, name: str, version: int) -> Lineage:
    """A version's lineage tags (as the operator's own user, the admin)."""
    admin = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    found = admin.get_model_version(name, str(version))
    return Lineage(run_id=str(found.run_id or ""),
                   training_job_uid=(found.tags or {}).get(TAG_TRAININGJOB_UID))


@metrics.registry_call("log_files", USER_ERRORS)
def log_files(tracking_uri: str, run_id: str, files: dict[str, bytes]) -> None:
    """Add files (artifact path -> content) to a run's artifacts, as the operator's own user,
    through MLflow's artifact proxy: the operator holds no object store credentials."""
    admin = MlflowClient(tracking_uri=tracking_uri)
    with tempfile.TemporaryDirectory(prefix="mlcycle-artifacts-") as scratch:
        for path, content in files.items():
            folder, _, name = path.rpartition("/")
            local = Path(scratch) / name
            local.write_bytes(content)
            admin.log_artifact(run_id, str(local), folder or None)


__all__ = ["Lineage", "MlflowException", "ModelAccessDenied", "ModelNotFound", "ModelVersion",
           "RegistryUser", "check_registrable", "log_files", "model_file",
           "resolve", "version_lineage"]
