"""The trainer's reading of the Dataset and TrainingJob specs: defaults and named errors."""

from __future__ import annotations

from typing import Any

import pytest

from mlcycle_trainer.errors import InvalidInput
from mlcycle_trainer.specs import DatasetSpec, Gate, TrainingSpec


def test_dataset_defaults() -> None:
    spec = DatasetSpec.from_json({"source": {"builtin": "iris"}, "target": " species "})
    assert (spec.builtin, spec.format, spec.target, spec.features, spec.profile_enabled) == (
        "iris",
        "csv",
        "species",
        None,
        True,
    )
    assert spec.source_description == "builtin:iris"


def test_dataset_with_everything() -> None:
    spec = DatasetSpec.from_json(
        {
            "source": {"s3": "s3://bucket/key.parquet"},
            "format": "parquet",
            "target": "y",
            "features": ["b", "a"],
            "split": {"testFraction": 0.3},
            "profile": {"enabled": False},
            "refreshInterval": "1h",
        }
    )
    assert (spec.s3, spec.format, spec.features, spec.profile_enabled) == (
        "s3://bucket/key.parquet",
        "parquet",
        ("b", "a"),
        False,
    )


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"source": {}, "target": "y"}, "spec.source"),
        ({"source": {"builtin": "iris", "url": "https://x/y.csv"}, "target": "y"}, "spec.source"),
        ({"source": {"url": "file:///etc/passwd"}, "target": "y"}, "spec.source.url"),
        ({"source": {"builtin": "mnist"}, "target": "y"}, "spec.source.builtin"),
        ({"source": {"builtin": "iris"}}, "spec.target"),
        ({"source": {"builtin": "iris"}, "target": "y", "format": "xlsx"}, "spec.format"),
        ({"source": {"builtin": "iris"}, "target": "y", "features": [1]}, "spec.features"),
        ({"source": "iris", "target": "y"}, "spec.source"),
    ],
)
def test_dataset_errors_name_the_field(data: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as excinfo:
        DatasetSpec.from_json(data)
    assert excinfo.value.reason == "InvalidSpec"
    assert field in excinfo.value.message


def test_training_defaults() -> None:
    spec = TrainingSpec.from_json({"datasetRef": {"name": "d"}, "algorithm": "ridge"})
    assert (spec.scaling, spec.one_hot_encode, spec.holdout_fraction, spec.folds, spec.seed) == (
        "standard",
        True,
        0.2,
        5,
        42,
    )
    assert (spec.gates, spec.objective_metric, spec.model_name, spec.alias) == (
        (),
        None,
        None,
        None,
    )


def test_training_with_everything() -> None:
    spec = TrainingSpec.from_json(
        {
            "datasetRef": {"name": "d", "version": "abc"},
            "algorithm": "svc",
            "hyperparameters": {"C": 2},
            "preprocessing": {"scaling": "minmax", "oneHotEncode": False},
            "validation": {
                "holdoutFraction": 0.25,
                "folds": 0,
                "seed": 1,
                "gates": [{"metric": "accuracy", "op": ">=", "threshold": 1}],
            },
            "objective": {"metric": "f1_macro", "direction": "maximize"},
            "registry": {"modelName": "m", "alias": "champion"},
            "resources": {"limits": {"memory": "1Gi"}},
        }
    )
    assert spec.hyperparameters == {"C": 2}
    assert (spec.scaling, spec.one_hot_encode, spec.holdout_fraction, spec.folds) == (
        "minmax",
        False,
        0.25,
        0,
    )
    assert spec.gates == (Gate("accuracy", ">=", 1.0),)
    assert (spec.objective_metric, spec.model_name, spec.alias) == ("f1_macro", "m", "champion")


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({}, "spec.algorithm"),
        ({"algorithm": "svc", "hyperparameters": [1]}, "spec.hyperparameters"),
        ({"algorithm": "svc", "validation": {"folds": 1}}, "spec.validation.folds"),
        ({"algorithm": "svc", "validation": {"folds": True}}, "spec.validation.folds"),
        ({"algorithm": "svc", "validation": {"holdoutFraction": 0.9}}, "holdoutFraction"),
        ({"algorithm": "svc", "preprocessing": {"scaling": "log"}}, "spec.preprocessing.scaling"),
        (
            {"algorithm": "svc", "validation": {"gates": [{"metric": "r2", "op": "=="}]}},
            "gates[0].op",
        ),
        ({"algorithm": "svc", "validation": {"gates": [{"metric": "r2", "op": ">"}]}}, "threshold"),
    ],
)
def test_training_errors_name_the_field(data: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidInput) as excinfo:
        TrainingSpec.from_json(data)
    assert excinfo.value.reason == "InvalidSpec"
    assert field in excinfo.value.message
