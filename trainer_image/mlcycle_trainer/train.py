"""`train`: fit one allow-listed scikit-learn pipeline on a pinned Dataset snapshot,
validate it, record it in MLflow, register it, and move the alias if every gate passes.

Everything that can be checked without data (algorithm, hyperparameters, objective,
gates) is checked first; the MLflow run starts before the fit, so a failed fit leaves a
FAILED run with its parameters to inspect.
"""

from __future__ import annotations

import io
import logging
import time
from typing import Any

import pandas as pd
from sklearn.pipeline import Pipeline

from mlcycle_trainer import contract, lineage, tracking
from mlcycle_trainer.algorithms import Algorithm, build_estimator, lookup
from mlcycle_trainer.environment import Owner, optional, spec_from_json
from mlcycle_trainer.errors import (
    FIT_FAILED,
    INVALID_HYPERPARAMETER,
    SNAPSHOT_UNREADABLE,
    InvalidInput,
)
from mlcycle_trainer.gates import evaluate_gates
from mlcycle_trainer.preprocessing import build_pipeline, features_and_target
from mlcycle_trainer.serialization import serialize
from mlcycle_trainer.specs import TrainingSpec
from mlcycle_trainer.storage import ObjectMissing, ObjectStore, S3Location
from mlcycle_trainer.validation import check_gates, measure, objective_metric, split
from mlcycle_trainer.vocabulary import FIT_SECONDS, MODEL_SIZE_BYTES

logger = logging.getLogger(__name__)

DEFAULT_EXPERIMENT = "mlcycle"
MESSAGE_DIGITS = 6


def load_snapshot(store: ObjectStore, uri: str) -> pd.DataFrame:
    try:
        data = store.get(S3Location.parse(uri))
    except ObjectMissing as exc:
        raise InvalidInput(SNAPSHOT_UNREADABLE, f"dataset snapshot {uri} does not exist") from exc
    try:
        return pd.read_parquet(io.BytesIO(data))
    except Exception as exc:
        raise InvalidInput(
            SNAPSHOT_UNREADABLE, f"{uri} is not a readable parquet file: {exc}"
        ) from exc


def fit(pipeline: Pipeline, x: pd.DataFrame, y: pd.Series, algorithm: Algorithm) -> float:
    """Fit the pipeline; returns the seconds it took."""
    started = time.perf_counter()
    try:
        pipeline.fit(x, y)
    except (ValueError, TypeError) as exc:
        invalid_parameter = type(exc).__name__ == "InvalidParameterError"
        raise InvalidInput(
            INVALID_HYPERPARAMETER if invalid_parameter else FIT_FAILED,
            f"fitting {algorithm.name} failed: {exc}",
        ) from exc
    seconds = time.perf_counter() - started
    logger.info("Fitted %s on %d rows in %.3f s", algorithm.name, len(x), seconds)
    return seconds


def run_train(store: ObjectStore | None = None) -> dict[str, Any]:
    """Train as the environment describes; returns the termination message."""
    owner = Owner.from_environment()
    spec_json = spec_from_json(contract.ENV_TRAINING_SPEC)
    spec = TrainingSpec.from_json(spec_json)
    dataset = lineage.DatasetInput.from_environment()
    algorithm = lookup(spec.algorithm)
    estimator = build_estimator(algorithm, spec.hyperparameters, spec.seed)
    objective = objective_metric(spec, algorithm.task)
    check_gates(spec, algorithm.task)
    model_name = spec.model_name or owner.name

    frame = load_snapshot(store or ObjectStore(), dataset.uri)
    x, y = features_and_target(frame, dataset.target, algorithm.task)
    x_train, x_holdout, y_train, y_holdout = split(
        x, y, algorithm.task, spec.holdout_fraction, spec.seed
    )
    runtime = tracking.runtime_versions()
    experiment_name = optional(contract.ENV_EXPERIMENT_NAME) or DEFAULT_EXPERIMENT
    experiment_id = tracking.ensure_experiment(experiment_name)
    run_tags = lineage.run_tags(owner, dataset, algorithm, runtime)
    with tracking.training_run(experiment_id, owner.name, run_tags) as run_id:
        shape = {"train_rows": len(x_train), "holdout_rows": len(x_holdout), "features": x.shape[1]}
        params = lineage.run_params(
            spec, algorithm, objective, estimator.get_params(deep=False), shape
        )
        tracking.log_params(params)
        tracking.log_spec(spec_json)
        tracking.log_dataset(frame, dataset.name, dataset.version, dataset.uri, dataset.target)

        pipeline = build_pipeline(estimator, x_train, spec.scaling, spec.one_hot_encode)
        fit_seconds = fit(pipeline, x_train, y_train, algorithm)
        metrics, folds_used = measure(
            pipeline, spec, algorithm.task, objective, (x_train, y_train), (x_holdout, y_holdout)
        )
        model_bytes, trusted_types = serialize(pipeline)
        metrics[FIT_SECONDS] = fit_seconds
        metrics[MODEL_SIZE_BYTES] = float(len(model_bytes))
        outcome = evaluate_gates(spec.gates, metrics)
        logger.info(
            "Validated: %s %.4g on the holdout; gates %s",
            objective,
            metrics.get(objective, float("nan")),
            "passed" if outcome.passed else "failed: " + "; ".join(outcome.failed),
        )
        tracking.log_metrics(metrics)
        tracking.log_params({"validation.folds_used": folds_used})
        tracking.set_tags(lineage.gate_tags(outcome))

        model = tracking.log_and_register_model(pipeline, x_train, trusted_types, model_name)
        tracking.tag_version(model, lineage.version_tags(owner, dataset, runtime, outcome))
        alias_moved = spec.alias is not None and outcome.passed
        if spec.alias is not None and alias_moved:
            tracking.move_alias(model, spec.alias)
        elif spec.alias is not None:
            logger.info("Alias %s not moved: a gate failed", spec.alias)

    message: dict[str, Any] = {
        "metrics": {key: round(value, MESSAGE_DIGITS) for key, value in metrics.items()},
        "fitSeconds": round(fit_seconds, MESSAGE_DIGITS),
        "model": {"name": model.name, "version": model.version, "uri": model.uri},
        "mlflow": {"runId": run_id, "experimentId": experiment_id},
        "runtime": {key: runtime[key] for key in ("python", "sklearn", "numpy")},
        "gates": outcome.as_json(),
        "datasetVersion": dataset.version,
    }
    if objective in metrics:
        message["objective"] = {
            "metric": objective,
            "value": round(metrics[objective], MESSAGE_DIGITS),
        }
    if spec.alias is not None:
        message["alias"] = {"name": spec.alias, "moved": alias_moved}
    return message
