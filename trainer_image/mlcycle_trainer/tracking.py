"""MLflow: the experiment, the run with every condition of the training, the logged and
registered model, its version tags and alias. Errors become Transient or InvalidInput.

The tracking server comes from MLFLOW_TRACKING_URI (read by MLflow itself). Each call is a
round trip to it, so what can go together goes together: the version's tags with its
registration, the run's results in one batch.
"""

from __future__ import annotations

import logging
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import mlflow
import mlflow.data
import mlflow.data.pandas_dataset
import mlflow.sklearn
import pandas as pd
from botocore.exceptions import BotoCoreError
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from mlflow.tracking import MlflowClient
from requests.exceptions import RequestException
from sklearn.pipeline import Pipeline

from mlcycle_contract.api.trainingjob import RegisteredModelVersion
from mlcycle_contract.drift import REFERENCE_ARTIFACT, DriftReference
from mlcycle_trainer.errors import TRACKING_UNAVAILABLE, InvalidInput, Transient
from mlcycle_trainer.ingest import PROFILE_FILE
from mlcycle_trainer.mlflow_rest import MAX_PARAM_CHARS, PERMANENT_CODES, TRACKING_REJECTED
from mlcycle_trainer.storage import ObjectStore, S3Location

logger = logging.getLogger(__name__)

MODEL_ARTIFACT_NAME = "model"
PROFILE_ARTIFACT_DIR = "dataset-profile"
MODEL_PACKAGES = ("scikit-learn", "skops", "numpy", "scipy", "pandas")


@contextmanager
def tracking_errors(action: str) -> Iterator[None]:
    try:
        yield
    except MlflowException as exc:
        code = str(exc.error_code)
        message = f"MLflow {action} failed ({code}): {str(exc.message)[:500]}"
        if code in PERMANENT_CODES:
            raise InvalidInput(TRACKING_REJECTED, message) from exc
        raise Transient(TRACKING_UNAVAILABLE, message) from exc
    except (RequestException, BotoCoreError, ConnectionError, TimeoutError) as exc:
        raise Transient(TRACKING_UNAVAILABLE, f"MLflow {action} failed: {exc}") from exc


def ensure_experiment(name: str, attempts: int = 6, pause_s: float = 0.5) -> str:
    """The experiment's id, creating it if needed, tolerating a concurrent creator: another
    Pod of the namespace (a search's other worker) may create it first, and MLflow's
    basic-auth records the creator's permission only after the experiment exists, so for a
    moment reading it answers 403 even to the same user."""
    with tracking_errors(f"opening experiment {name!r}"):
        for _ in range(attempts - 1):
            try:
                return str(mlflow.set_experiment(name).experiment_id)
            except MlflowException as exc:
                if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "PERMISSION_DENIED"):
                    raise
            time.sleep(pause_s)
        return str(mlflow.set_experiment(name).experiment_id)


@contextmanager
def training_run(experiment_id: str, run_name: str, tags: dict[str, str]) -> Iterator[str]:
    """An active run; it ends FAILED, tagged with the reason, if the block raises."""
    with tracking_errors("starting a run"):
        run = mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags)
    run_id = str(run.info.run_id)
    logger.info("Started MLflow run %s (experiment %s)", run_id, experiment_id)
    try:
        yield run_id
    except BaseException as exc:
        reason = getattr(exc, "reason", type(exc).__name__)
        try:
            mlflow.set_tag("mlcycle.error.reason", str(reason))
            mlflow.end_run(status="FAILED")
        except Exception as end_error:  # the original error matters more
            logger.warning("Could not mark run %s failed: %s", run_id, end_error)
        raise
    with tracking_errors("ending the run"):
        mlflow.end_run(status="FINISHED")


def log_params(params: dict[str, Any]) -> None:
    with tracking_errors("logging parameters"):
        mlflow.log_params({key: str(value)[:MAX_PARAM_CHARS] for key, value in params.items()})


@dataclass(frozen=True)
class RunResults:
    """What a run learns after its fit: metrics, late parameters, tags."""

    metrics: dict[str, float]
    params: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


def log_results(run_id: str, results: RunResults, model_id: str | None = None) -> None:
    """The results in one request; the metrics linked to the run's logged model `model_id`,
    as MLflow links a run's metrics to a model logged after them."""
    timestamp = int(time.time() * 1000)
    with tracking_errors("logging the results"):
        MlflowClient().log_batch(
            run_id,
            metrics=[Metric(key, value, timestamp, 0, model_id=model_id)
                     for key, value in results.metrics.items()],
            params=[Param(key, str(value)[:MAX_PARAM_CHARS])
                    for key, value in results.params.items()],
            tags=[RunTag(key, value) for key, value in results.tags.items()],
        )


def log_dataset(frame: pd.DataFrame, name: str, version: str, uri: str, target: str) -> None:
    """The training data as the run's input (name, digest = version, source URI)."""
    with tracking_errors("logging the dataset"), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")
        dataset = mlflow.data.pandas_dataset.from_pandas(
            frame, source=uri, name=name, targets=target, digest=version
        )
        mlflow.log_input(dataset, context="training")


def log_dataset_profile(store: ObjectStore, directory: S3Location) -> None:
    """The Dataset version's profile (report.html, profile.json, the plots) as the run's
    artifacts under `dataset-profile/`, where the MLflow UI shows them beside the model;
    nothing when the version has no complete profile (profile.json is written last)."""
    keys = store.keys_after(directory.child(""))
    if not any(key.endswith(f"/{PROFILE_FILE}") for key in keys):
        return
    with tempfile.TemporaryDirectory(prefix="profile-") as local:
        for key in keys:
            name = key.rpartition("/")[2]
            (Path(local) / name).write_bytes(store.get(S3Location(directory.bucket, key)))
        with tracking_errors("logging the dataset profile"):
            mlflow.log_artifacts(local, PROFILE_ARTIFACT_DIR)


def log_spec(spec: dict[str, Any]) -> None:
    with tracking_errors("logging the spec"):
        mlflow.log_dict(spec, "mlcycle/trainingjob-spec.json")


def log_drift_reference(reference: DriftReference) -> None:
    """The training split's per-feature distribution, next to the model in the run."""
    with tracking_errors("logging the drift reference"):
        mlflow.log_dict(reference.to_wire(), REFERENCE_ARTIFACT)


def model_requirements() -> list[str]:
    """Pins of the packages the model needs, from this runtime (MLflow adds its own pin).

    Given explicitly: MLflow would otherwise infer them by loading the model in a
    subprocess, which takes seconds and could only find these same packages.
    """
    return [f"{name}=={metadata.version(name)}" for name in MODEL_PACKAGES]


def log_and_register_model(
    pipeline: Pipeline,
    x_example: pd.DataFrame,
    trusted_types: list[str],
    model_name: str,
    version_tags: dict[str, str],
    run_id: str,
    results: RunResults,
) -> RegisteredModelVersion:
    """Log the pipeline (skops format) with its signature, register a new version with its
    tags, then log the run's results.

    In that order because MLflow links every metric a run already has to a model logged in
    it by reading each metric's history back (a request per metric); logged after the
    model, the metrics are linked as they are written. A model that fails to log still
    leaves the results in the run.
    """
    signature = infer_signature(x_example, pipeline.predict(x_example))
    try:
        with tracking_errors("logging the model"):
            info = mlflow.sklearn.log_model(
                pipeline,
                name=MODEL_ARTIFACT_NAME,
                serialization_format="skops",
                skops_trusted_types=trusted_types,
                signature=signature,
                input_example=x_example.head(3),
                registered_model_name=model_name,
                pip_requirements=model_requirements(),
                tags=version_tags,  # on the logged model and on the version it registers
            )
    except BaseException:
        try:
            log_results(run_id, results)
        except Exception as error:  # the model's error matters more
            logger.warning("Could not log the results of run %s: %s", run_id, error)
        raise
    log_results(run_id, results, info.model_id)
    version = info.registered_model_version
    if version is None:
        raise Transient(
            TRACKING_UNAVAILABLE, f"MLflow did not register a version of {model_name!r}"
        )
    logger.info("Registered model %s version %s", model_name, version)
    return RegisteredModelVersion(
        name=model_name, version=int(version), uri=f"models:/{model_name}/{version}"
    )


def move_alias(model: RegisteredModelVersion, alias: str) -> None:
    with tracking_errors(f"setting alias {alias!r} on {model.uri}"):
        MlflowClient().set_registered_model_alias(model.name, alias, str(model.version))
    logger.info("Moved alias %s of model %s to version %d", alias, model.name, model.version)
