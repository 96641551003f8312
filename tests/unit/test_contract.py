"""The shared contract package: pure pydantic and the standard library, and results that
refuse what they do not describe."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from typing import Any

import pytest
from pydantic import ValidationError

import mlcycle_contract
from mlcycle_contract.results import FailureResult, IngestionResult, TrainingResult

TRAINING_RESULT: dict[str, Any] = {
    "metrics": {"accuracy": 0.95, "cv_accuracy_mean": 0.94},
    "fitSeconds": 0.2,
    "model": {"name": "iris", "version": 3, "uri": "models:/iris/3"},
    "mlflow": {"runId": "9db6", "experimentId": "1"},
    "runtime": {"python": "3.11.7", "sklearn": "1.9.1", "numpy": "2.4.6"},
    "gates": {"passed": True, "failed": []},
    "datasetVersion": "d9d191731c36e5be",
    "objective": {"metric": "accuracy", "value": 0.95},
    "alias": {"name": "champion", "moved": True},
}


def test_no_module_imports_a_program_s_dependencies() -> None:
    prefix = "mlcycle_contract."
    modules = [m.name for m in pkgutil.walk_packages(mlcycle_contract.__path__, prefix)]
    assert f"{prefix}api.algorithms" in modules and f"{prefix}results" in modules
    code = (
        f"import importlib, sys; [importlib.import_module(m) for m in {modules!r}]; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'kopf', 'kubernetes', 'sklearn', 'mlflow', 'numpy', 'pandas', 'boto3'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_a_training_result_round_trips_in_camel_case() -> None:
    result = TrainingResult.model_validate(TRAINING_RESULT)
    assert result.to_wire() == TRAINING_RESULT
    assert result.model.version == 3 and result.gates.passed


@pytest.mark.parametrize("missing", ["gates", "model", "runtime", "datasetVersion"])
def test_a_training_result_without_a_required_part_is_refused(missing: str) -> None:
    incomplete = {key: value for key, value in TRAINING_RESULT.items() if key != missing}
    with pytest.raises(ValidationError, match=missing):
        TrainingResult.model_validate(incomplete)


def test_results_refuse_unknown_keys() -> None:
    with pytest.raises(ValidationError):
        FailureResult.model_validate({"error": {"reason": "X", "message": "m"}, "extra": 1})
    with pytest.raises(ValidationError):
        IngestionResult.model_validate({"version": "v", "snapshotUri": "s3://b/k"})


def test_runtime_keys_are_the_fields_of_model_runtime() -> None:
    from mlcycle_contract.api.modeldeployment import ModelRuntime
    from mlcycle_contract.runtime import RUNTIME_KEYS

    assert tuple(ModelRuntime.model_fields) == RUNTIME_KEYS
