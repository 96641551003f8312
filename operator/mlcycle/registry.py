"""The MLflow model registry as the operator needs it: which version an alias points at,
the runtime that version was trained in, and its MLmodel file (how it was saved). The only
module that reads the registry. Models are looked up as the namespace's own MLflow user, so
MLflow's permissions decide what a namespace may serve or register: another namespace's
model is `ModelAccessDenied`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from mlcycle import metrics
from mlcycle.mlflow_api import Credentials, Mlflow, MlflowError
from mlcycle_contract.environment import TAG_TRAININGJOB_UID, runtime_tag
from mlcycle_contract.model_format import MLMODEL_FILE
from mlcycle_contract.runtime import RUNTIME_KEYS


class ModelNotFound(Exception):
    """The registered model, version or alias does not exist (a user error, not transient)."""


class ModelAccessDenied(Exception):
    """The namespace's MLflow user may not read the registered model (another's)."""


RegistryUser = Credentials  # who the registry is read as: the namespace's MLflow user


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


def _denied(tracking_uri: str, error: MlflowError, user: RegistryUser,
            name: str) -> ModelAccessDenied | None:
    """MLflow answers PERMISSION_DENIED whether or not the model exists (it tells no one what
    they may not see); the operator, as MLflow's admin, tells the two apart."""
    if error.error_code != "PERMISSION_DENIED" or not _exists(tracking_uri, name):
        return None
    return ModelAccessDenied(f"registered model {name!r} belongs to another namespace: MLflow "
                             f"denies this namespace's user {user.username!r} access to it")


def _exists(tracking_uri: str, name: str) -> bool:
    """As the operator's own MLflow user (the admin, MLFLOW_TRACKING_USERNAME)."""
    found = Mlflow.admin(tracking_uri).search_registered_models(f"name = '{name}'", max_results=1)
    return bool(found.items)


@metrics.registry_call("resolve", USER_ERRORS)
def resolve(tracking_uri: str, user: RegistryUser, name: str, version: int | None,
            alias: str | None) -> ModelVersion:
    """Look the model version up; ModelNotFound and ModelAccessDenied for user errors,
    MlflowError otherwise."""
    registry = Mlflow(tracking_uri, user)
    try:
        if alias is not None:
            found = registry.get_model_version_by_alias(name, alias)
        else:
            found = registry.get_model_version(name, str(version))
    except MlflowError as error:
        denied = _denied(tracking_uri, error, user, name)
        if denied is not None:
            raise denied from None
        if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE",
                                "PERMISSION_DENIED"):
            what = f"alias {alias!r}" if alias is not None else f"version {version}"
            raise ModelNotFound(f"registered model {name!r} has no {what}") from error
        raise
    return ModelVersion(
        name=name,
        version=int(found.version),
        runtime={key: found.tags[tag] for key, tag in RUNTIME_TAGS.items() if tag in found.tags},
    )


@metrics.registry_call("check_registrable", USER_ERRORS)
def check_registrable(tracking_uri: str, user: RegistryUser, name: str) -> None:
    """ModelAccessDenied if the registered model exists and is another namespace's; a model
    that does not exist yet is the namespace's to create."""
    try:
        Mlflow(tracking_uri, user).get_registered_model(name)
    except MlflowError as error:
        denied = _denied(tracking_uri, error, user, name)
        if denied is not None:
            raise denied from None
        if error.error_code not in ("RESOURCE_DOES_NOT_EXIST", "PERMISSION_DENIED"):
            raise


@metrics.registry_call("model_file", USER_ERRORS)
def model_file(tracking_uri: str, model: ModelVersion) -> Any:
    """The version's MLmodel file, parsed but never acted on: the model itself is not read."""
    admin = Mlflow.admin(tracking_uri)
    source = admin.get_model_version_download_uri(model.name, str(model.version))
    return yaml.safe_load(admin.download_artifact(f"{source.rstrip('/')}/{MLMODEL_FILE}"))


@dataclass(frozen=True)
class Lineage:
    """Where a model version comes from: its run, and the TrainingJob that trained it (none
    for a version registered outside mlcycle)."""

    run_id: str
    training_job_uid: str | None


@metrics.registry_call("version_lineage", USER_ERRORS)
def version_lineage(tracking_uri: str, name: str, version: int) -> Lineage:
    """A version's lineage tags (as the operator's own user, the admin)."""
    found = Mlflow.admin(tracking_uri).get_model_version(name, str(version))
    return Lineage(run_id=found.run_id, training_job_uid=found.tags.get(TAG_TRAININGJOB_UID))


@metrics.registry_call("log_files", USER_ERRORS)
def log_files(tracking_uri: str, run_id: str, files: dict[str, bytes]) -> None:
    """Add files (artifact path -> content) to a run's artifacts, as the operator's own user,
    through MLflow's artifact proxy: the operator holds no object store credentials."""
    Mlflow.admin(tracking_uri).log_artifacts(run_id, files)


__all__ = ["Lineage", "MlflowError", "ModelAccessDenied", "ModelNotFound", "ModelVersion",
           "RegistryUser", "check_registrable", "log_files", "model_file",
           "resolve", "version_lineage"]
