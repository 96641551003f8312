"""`train`: fit one allow-listed scikit-learn pipeline on a pinned Dataset snapshot,
validate it, record it in MLflow, register it, and move the alias if every gate passes.

Everything that can be checked without data (the spec, the hyperparameters) is checked
first; the MLflow run starts before the fit, so a failed fit leaves a FAILED run with its
parameters to inspect.
"""

from __future__ import annotations

import logging
import time

import pandas as pd
from sklearn.pipeline import Pipeline

from mlcycle_contract.api.algorithms import AlgorithmDefinition
from mlcycle_contract.api.learning import GateMetric
from mlcycle_contract.api.modeldeployment import ModelRuntime
from mlcycle_contract.api.trainingjob import ObjectiveValue, TrainingJobSpec
from mlcycle_contract.drift import REFERENCE_ARTIFACT, TAG_DRIFT_REFERENCE
from mlcycle_contract.environment import MLFLOW_EXPERIMENT_NAME, TRAINING_SPEC
from mlcycle_contract.results import AliasOutcome, TrackingRun, TrainingResult
from mlcycle_contract.runtime import RUNTIME_KEYS, current_runtime
from mlcycle_trainer import lineage, phases, tracking
from mlcycle_trainer.algorithms import build_estimator, lookup
from mlcycle_trainer.champion import compare_with_champion, run_record
from mlcycle_trainer.drift_reference import build_reference
from mlcycle_trainer.environment import Owner, model_from_json, optional
from mlcycle_trainer.errors import FIT_FAILED, INVALID_HYPERPARAMETER, InvalidInput
from mlcycle_trainer.gates import evaluate_gates
from mlcycle_trainer.ingest import profile_directory
from mlcycle_trainer.preprocessing import build_pipeline, features_and_target
from mlcycle_trainer.serialization import serialize
from mlcycle_trainer.snapshots import read_snapshot
from mlcycle_trainer.storage import ObjectStore
from mlcycle_trainer.validation import Holdout, measure, split

logger = logging.getLogger(__name__)

FIT_SECONDS = "fit_seconds"
MESSAGE_DIGITS = 6


def fit(
    pipeline: Pipeline, x: pd.DataFrame, y: pd.Series, algorithm: AlgorithmDefinition
) -> float:
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


def run_train(store: ObjectStore | None = None) -> TrainingResult:
    """Train as the environment describes."""
    owner = Owner.from_environment()
    spec = model_from_json(TRAINING_SPEC, TrainingJobSpec, "spec")
    dataset = lineage.DatasetInput.from_environment()
    algorithm = lookup(spec.algorithm)
    estimator = build_estimator(algorithm, spec.hyperparameters, spec.validation.seed)
    objective = spec.effective_objective.metric
    holdout = Holdout.resolve(dataset.split, spec.validation, algorithm.task)
    model_name = spec.registry.model_name or owner.name
    alias = spec.registry.alias

    store = store or ObjectStore()
    phases.lap("S3 client")
    frame = read_snapshot(store, dataset.uri, dataset.version)
    x, y = features_and_target(frame, dataset.target, algorithm.task)
    x_train, x_holdout, y_train, y_holdout = split(x, y, holdout)
    phases.lap("read snapshot")
    runtime = current_runtime()
    experiment_id = tracking.ensure_experiment(optional(MLFLOW_EXPERIMENT_NAME))
    run_tags = lineage.run_tags(owner, dataset, algorithm, runtime)
    with tracking.training_run(experiment_id, owner.name, run_tags) as run_id:
        phases.lap("start MLflow run")
        shape = {"train_rows": len(x_train), "holdout_rows": len(x_holdout), "features": x.shape[1]}
        params = lineage.run_params(
            spec, algorithm, objective, holdout, estimator.get_params(deep=False), shape
        )
        tracking.log_params(params)
        tracking.log_spec(spec.to_wire())
        phases.lap("log params and spec")
        tracking.log_dataset(frame, dataset.name, dataset.version, dataset.uri, dataset.target)
        phases.lap("log dataset")
        tracking.log_dataset_profile(store, profile_directory(dataset.uri))
        phases.lap("log dataset profile")
        tracking.log_drift_reference(build_reference(x_train))
        phases.lap("log drift reference")

        pipeline = build_pipeline(
            estimator, x_train, spec.preprocessing.scaling, spec.preprocessing.one_hot_encode
        )
        fit_seconds = fit(pipeline, x_train, y_train, algorithm)
        phases.lap("fit")
        metrics, folds_used = measure(
            pipeline, spec.validation, algorithm.task, objective, (x_train, y_train),
            (x_holdout, y_holdout),
        )
        phases.lap("scoring")
        model_bytes, trusted_types = serialize(pipeline, algorithm)
        phases.lap("serialize")
        metrics[FIT_SECONDS] = fit_seconds
        metrics[GateMetric.MODEL_SIZE_BYTES.value] = float(len(model_bytes))
        champion = compare_with_champion(
            spec, model_name, algorithm.task, (x_train, y_train), (x_holdout, y_holdout)
        )
        outcome = evaluate_gates(spec.validation.gates, metrics, champion)
        phases.lap("champion and gates")
        logger.info(
            "Validated: %s %.4g on the holdout; gates %s",
            objective,
            metrics.get(objective, float("nan")),
            "passed" if outcome.passed else "failed: " + "; ".join(outcome.failed),
        )
        champion_metrics, champion_tags = run_record(champion)
        results = tracking.RunResults(
            metrics={**metrics, **champion_metrics},
            params={"validation.folds_used": folds_used},
            tags={**lineage.gate_tags(outcome), **champion_tags},
        )
        version_tags = {
            **lineage.version_tags(owner, dataset, runtime, outcome),
            TAG_DRIFT_REFERENCE: REFERENCE_ARTIFACT,
        }
        model = tracking.log_and_register_model(
            pipeline, x_train, trusted_types, model_name, version_tags, run_id, results
        )
        phases.lap("log and register model, log results")
        if alias is not None and outcome.passed:
            tracking.move_alias(model, alias)
        elif alias is not None:
            logger.info("Alias %s not moved: a gate failed", alias)
        phases.lap("move alias")
    phases.lap("end run")

    return TrainingResult(
        metrics={key: round(value, MESSAGE_DIGITS) for key, value in metrics.items()},
        fit_seconds=round(fit_seconds, MESSAGE_DIGITS),
        model=model,
        mlflow=TrackingRun(run_id=run_id, experiment_id=experiment_id),
        runtime=ModelRuntime.model_validate({key: runtime[key] for key in RUNTIME_KEYS}),
        gates=outcome,
        dataset_version=dataset.version,
        objective=(
            ObjectiveValue(metric=objective, value=round(metrics[objective], MESSAGE_DIGITS))
            if objective in metrics
            else None
        ),
        alias=(
            AliasOutcome(name=alias, moved=outcome.passed) if alias is not None else None
        ),
        champion=champion,
        timings=phases.timings(),
    )
