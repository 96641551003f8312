"""What a training run records about itself: the dataset it used, its parameters, and the
tags on the run and on the registered model version (lineage and runtime)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlcycle_contract.api.algorithms import AlgorithmDefinition
from mlcycle_contract.api.dataset import SplitSpec
from mlcycle_contract.api.learning import Metric
from mlcycle_contract.api.trainingjob import TrainingJobSpec
from mlcycle_contract.environment import (
    DATASET_NAME,
    DATASET_SPLIT,
    DATASET_TARGET,
    DATASET_URI,
    DATASET_VERSION,
    TAG_DATASET_NAME,
    TAG_DATASET_VERSION,
    TAG_GATES_PASSED,
    TAG_TRAININGJOB_UID,
    runtime_tag,
)
from mlcycle_contract.results import GateOutcome
from mlcycle_trainer.environment import Owner, model_from_json, required
from mlcycle_trainer.gates import describe
from mlcycle_trainer.validation import Holdout

TAG_GATES_FAILED = "mlcycle.gates.failed"


@dataclass(frozen=True)
class DatasetInput:
    """The Dataset version the operator resolved and pinned for this run, and its split."""

    name: str
    version: str
    uri: str
    target: str
    split: SplitSpec

    @classmethod
    def from_environment(cls) -> DatasetInput:
        return cls(
            name=required(DATASET_NAME),
            version=required(DATASET_VERSION),
            uri=required(DATASET_URI),
            target=required(DATASET_TARGET),
            split=model_from_json(DATASET_SPLIT, SplitSpec, "spec.split"),
        )


def _lineage_tags(owner: Owner, dataset: DatasetInput, runtime: dict[str, str]) -> dict[str, str]:
    """Where a model comes from: its data, its TrainingJob, the image and runtime it ran in."""
    return {
        **{runtime_tag(key): value for key, value in runtime.items()},
        TAG_DATASET_NAME: dataset.name,
        TAG_DATASET_VERSION: dataset.version,
        TAG_TRAININGJOB_UID: owner.uid,
        "mlcycle.namespace": owner.namespace,
        "mlcycle.image": owner.image,
    }


def _non_empty(tags: dict[str, str]) -> dict[str, str]:
    return {key: value for key, value in tags.items() if value}


def run_tags(
    owner: Owner,
    dataset: DatasetInput,
    algorithm: AlgorithmDefinition,
    runtime: dict[str, str],
) -> dict[str, str]:
    """Tags of the run: its lineage, and which TrainingJob and estimator it ran."""
    return _non_empty(
        {
            **_lineage_tags(owner, dataset, runtime),
            "mlcycle.trainingjob.name": owner.name,
            "mlcycle.algorithm": algorithm.name,
            "mlcycle.task": algorithm.task.value,
            "mlcycle.dataset.uri": dataset.uri,
        }
    )


def gate_tags(outcome: GateOutcome) -> dict[str, str]:
    tags = {TAG_GATES_PASSED: str(outcome.passed).lower()}
    if outcome.failed:
        tags[TAG_GATES_FAILED] = "; ".join(outcome.failed)
    return tags


def version_tags(
    owner: Owner, dataset: DatasetInput, runtime: dict[str, str], outcome: GateOutcome
) -> dict[str, str]:
    """Tags of the registered version: its lineage and its gates."""
    return _non_empty({**_lineage_tags(owner, dataset, runtime), **gate_tags(outcome)})


def run_params(
    spec: TrainingJobSpec,
    algorithm: AlgorithmDefinition,
    objective: Metric,
    holdout: Holdout,
    estimator_params: dict[str, Any],
    data_shape: dict[str, int],
) -> dict[str, Any]:
    """Every condition of the run: the estimator's effective parameters (defaults included,
    under their scikit-learn names) and the settings (dotted names, which never collide)."""
    validation = spec.validation
    return {
        **estimator_params,
        "algorithm.name": algorithm.name,
        "algorithm.task": algorithm.task.value,
        "preprocessing.scaling": spec.preprocessing.scaling.value,
        "preprocessing.one_hot_encode": spec.preprocessing.one_hot_encode,
        "validation.holdout_fraction": holdout.fraction,
        "validation.folds": validation.folds,
        "validation.seed": validation.seed,
        "validation.gates": "; ".join(describe(gate) for gate in validation.gates) or "none",
        "split.seed": holdout.seed,
        "split.stratify": holdout.stratify,
        "objective.metric": objective.value,
        "registry.model_name": spec.registry.model_name or "",
        "registry.alias": spec.registry.alias or "",
        **{f"data.{key}": value for key, value in data_shape.items()},
    }
