"""The champion: the version the alias points at now, scored on the new model's held-out
data, so a baseline gate compares the two on the same rows.

The champion is loaded as the model server loads a model: only a scikit-learn model in the
skops format, trusting only the types the algorithm table lists. A champion that cannot be
loaded or scored (another format, or columns the new data lacks) is reported with the
reason, and its baseline gates fail: nothing replaces a champion unless it was beaten.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any

import mlflow.artifacts
import pandas as pd
import yaml
from mlflow.tracking import MlflowClient

from mlcycle_contract.api.algorithms import ALGORITHMS
from mlcycle_contract.api.evaluation import ChampionScores, ValidationSpec
from mlcycle_contract.api.learning import GateMetric, Metric, Task
from mlcycle_contract.api.trainingjob import TrainingJobSpec
from mlcycle_contract.model_format import MLMODEL_FILE, SKOPS_FILE, skops_io, unsafe_format
from mlcycle_trainer.tracking import tracking_errors
from mlcycle_trainer.validation import measure

logger = logging.getLogger(__name__)

TAG_CHAMPION_VERSION = "mlcycle.champion.version"
CHAMPION_METRIC_PREFIX = "champion_"
MAX_ERROR_CHARS = 500


def compare_with_champion(
    spec: TrainingJobSpec,
    model_name: str,
    task: Task,
    train: tuple[pd.DataFrame, pd.Series],
    holdout: tuple[pd.DataFrame, pd.Series],
) -> ChampionScores | None:
    """The champion scored for the baseline gates (`run_record` says what the run logs of
    it); None when no gate has a baseline or no version holds the alias yet."""
    alias = spec.registry.alias
    metrics = [gate.metric.value for gate in spec.validation.gates if gate.baseline]
    version = champion_version(model_name, alias) if alias and metrics else None
    if version is None:
        return None
    return score_champion(model_name, version, metrics, spec.validation, task,
                          spec.effective_objective.metric, train, holdout)


def run_record(champion: ChampionScores | None) -> tuple[dict[str, float], dict[str, str]]:
    """The metrics (`champion_<metric>`) and tag (its version) the run logs of the champion
    it was compared with."""
    if champion is None:
        return {}, {}
    metrics = {CHAMPION_METRIC_PREFIX + name: value for name, value in champion.metrics.items()}
    return metrics, {TAG_CHAMPION_VERSION: str(champion.version)}


def champion_version(model_name: str, alias: str) -> int | None:
    """The version `alias` points at, or None when the model or the alias does not exist.

    A search first: MLflow's basic-auth answers 403, not 404, for a model nobody may read
    yet, such as one not registered, while a search lists only what this user may read."""
    client = MlflowClient()
    with tracking_errors(f"reading the aliases of {model_name!r}"):
        if not client.search_registered_models(filter_string=f"name = '{model_name}'"):
            return None
        version = client.get_registered_model(model_name).aliases.get(alias)
    return int(version) if version is not None else None


def _load(model_dir: Path) -> Any:
    problem = unsafe_format(yaml.safe_load((model_dir / MLMODEL_FILE).read_text()))
    if problem is not None:
        raise ValueError(f"it is {problem}")
    trusted = sorted({name for a in ALGORITHMS.values() for name in a.skops_trusted_types()})
    return skops_io().load(model_dir / SKOPS_FILE, trusted=trusted)


def score_champion(
    model_name: str,
    version: int,
    metrics: list[str],
    validation: ValidationSpec,
    task: Task,
    objective: Metric,
    train: tuple[pd.DataFrame, pd.Series],
    holdout: tuple[pd.DataFrame, pd.Series],
) -> ChampionScores:
    """`metrics` of champion `version`, measured as the new model is (no cross-validation)."""
    with tempfile.TemporaryDirectory(prefix="champion-") as directory:
        with tracking_errors(f"downloading models:/{model_name}/{version}"):
            model_dir = Path(mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{model_name}/{version}", dst_path=directory))
        try:
            measured, _ = measure(_load(model_dir), validation.model_copy(update={"folds": 0}),
                                  task, objective, train, holdout)
        except Exception as exc:  # whatever stops it, the baseline gates name it and fail
            error = f"v{version} could not be scored: {type(exc).__name__}: {exc}"
            logger.warning("Champion %s", error)
            return ChampionScores(version=version, error=error[:MAX_ERROR_CHARS])
        measured[GateMetric.MODEL_SIZE_BYTES.value] = float((model_dir / SKOPS_FILE).stat().st_size)
    scores = {name: measured[name] for name in metrics if name in measured}
    logger.info("Champion %s v%d on this holdout: %s", model_name, version, scores)
    return ChampionScores(version=version, metrics=scores)
