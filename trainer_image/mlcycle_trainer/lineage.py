"""What a training run records about itself: the dataset it used, its parameters, and the
tags on the run and on the registered model version (lineage and runtime)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mlcycle_trainer import contract
from mlcycle_trainer.algorithms import Algorithm
from mlcycle_trainer.environment import Owner, required
from mlcycle_trainer.gates import GateOutcome
from mlcycle_trainer.specs import TrainingSpec

RUNTIME_TAGS = {
    "python": contract.TAG_RUNTIME_PYTHON,
    "sklearn": contract.TAG_RUNTIME_SKLEARN,
    "numpy": contract.TAG_RUNTIME_NUMPY,
    "mlflow": contract.TAG_RUNTIME_MLFLOW,
}
TAG_GATES_FAILED = "mlcycle.gates.failed"


@dataclass(frozen=True)
class DatasetInput:
    """The Dataset version the operator resolved and pinned for this run."""

    name: str
    version: str
    uri: str
    target: str

    @classmethod
    def from_environment(cls) -> DatasetInput:
        return cls(
            name=required(contract.ENV_DATASET_NAME),
            version=required(contract.ENV_DATASET_VERSION),
            uri=required(contract.ENV_DATASET_URI),
            target=required(contract.ENV_DATASET_TARGET),
        )


def runtime_tags(runtime: dict[str, str]) -> dict[str, str]:
    return {RUNTIME_TAGS[key]: value for key, value in runtime.items() if key in RUNTIME_TAGS}


def _non_empty(tags: dict[str, str]) -> dict[str, str]:
    return {key: value for key, value in tags.items() if value}


def run_tags(
    owner: Owner, dataset: DatasetInput, algorithm: Algorithm, runtime: dict[str, str]
) -> dict[str, str]:
    """Tags of the run: where it ran, on what data, with which estimator and runtime."""
    return _non_empty(
        {
            "mlcycle.namespace": owner.namespace,
            "mlcycle.trainingjob.name": owner.name,
            contract.TAG_TRAININGJOB_UID: owner.uid,
            "mlcycle.image": owner.image,
            "mlcycle.algorithm": algorithm.name,
            "mlcycle.task": algorithm.task,
            contract.TAG_DATASET_NAME: dataset.name,
            contract.TAG_DATASET_VERSION: dataset.version,
            "mlcycle.dataset.uri": dataset.uri,
            **runtime_tags(runtime),
        }
    )


def gate_tags(outcome: GateOutcome) -> dict[str, str]:
    tags = {contract.TAG_GATES_PASSED: str(outcome.passed).lower()}
    if outcome.failed:
        tags[TAG_GATES_FAILED] = "; ".join(outcome.failed)
    return tags


def version_tags(
    owner: Owner, dataset: DatasetInput, runtime: dict[str, str], outcome: GateOutcome
) -> dict[str, str]:
    """Tags of the registered version: its runtime, its data, its TrainingJob, its gates."""
    return _non_empty(
        {
            **runtime_tags(runtime),
            contract.TAG_DATASET_NAME: dataset.name,
            contract.TAG_DATASET_VERSION: dataset.version,
            contract.TAG_TRAININGJOB_UID: owner.uid,
            "mlcycle.namespace": owner.namespace,
            "mlcycle.image": owner.image,
            **gate_tags(outcome),
        }
    )


def run_params(
    spec: TrainingSpec,
    algorithm: Algorithm,
    objective: str,
    estimator_params: dict[str, Any],
    data_shape: dict[str, int],
) -> dict[str, Any]:
    """Every condition of the run: the estimator's effective parameters (defaults included,
    under their scikit-learn names) and the settings (dotted names, which never collide)."""
    return {
        **estimator_params,
        "algorithm.name": algorithm.name,
        "algorithm.task": algorithm.task,
        "preprocessing.scaling": spec.scaling,
        "preprocessing.one_hot_encode": spec.one_hot_encode,
        "validation.holdout_fraction": spec.holdout_fraction,
        "validation.folds": spec.folds,
        "validation.seed": spec.seed,
        "validation.gates": "; ".join(str(gate) for gate in spec.gates) or "none",
        "objective.metric": objective,
        "registry.model_name": spec.model_name or "",
        "registry.alias": spec.alias or "",
        **{f"data.{key}": value for key, value in data_shape.items()},
    }
