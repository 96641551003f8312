"""Fields the API declares and the operator does not implement yet are refused, each by name,
never accepted and ignored; none is left today."""

from __future__ import annotations

from typing import Any

from mlcycle.unsupported import (
    dataset_unsupported,
    model_deployment_unsupported,
    training_job_unsupported,
    unsupported_message,
)
from mlcycle_contract.api.dataset import DatasetSpec
from mlcycle_contract.api.modeldeployment import ModelDeploymentSpec
from mlcycle_contract.api.trainingjob import TrainingJobSpec

DATASET: dict[str, Any] = {"source": {"builtin": "iris"}, "target": "target"}
TRAINING: dict[str, Any] = {"datasetRef": {"name": "iris"},
                            "algorithm": "random_forest_classifier"}
DEPLOYMENT: dict[str, Any] = {"model": {"name": "iris", "alias": "champion"}}


def test_the_examples_set_no_unsupported_field() -> None:
    assert dataset_unsupported(DatasetSpec.model_validate(DATASET)) == []
    assert training_job_unsupported(TrainingJobSpec.model_validate(TRAINING)) == []
    assert model_deployment_unsupported(ModelDeploymentSpec.model_validate(DEPLOYMENT)) == []


def test_fields_left_at_their_off_value_are_not_refused() -> None:
    off = {**TRAINING, "retrain": {"onNewData": False, "onDrift": False}}
    assert training_job_unsupported(TrainingJobSpec.model_validate(off)) == []
    no_drift = {**DEPLOYMENT, "monitoring": {"drift": False}}
    assert model_deployment_unsupported(ModelDeploymentSpec.model_validate(no_drift)) == []


def test_continuous_training_fields_are_supported() -> None:
    assert dataset_unsupported(DatasetSpec.model_validate({**DATASET, "refreshInterval": "1h"})) \
        == []
    automatic = {**TRAINING, "schedule": "0 3 * * *", "timeZone": "Europe/Berlin",
                 "concurrencyPolicy": "Replace",
                 "retrain": {"onNewData": True, "onDrift": True, "minInterval": "1h",
                             "maxRunsPerDay": 3}}
    assert training_job_unsupported(TrainingJobSpec.model_validate(automatic)) == []


SEARCH: dict[str, Any] = {"datasetRef": {"name": "iris"}, "search": {"algorithms": ["svc"]}}


def test_automatic_triggers_on_a_search_are_supported() -> None:
    for changes in ({"schedule": "@daily"}, {"retrain": {"onNewData": True}},
                    {"retrain": {"onDrift": True}}, {"concurrencyPolicy": "Replace"}):
        spec = TrainingJobSpec.model_validate({**SEARCH, **changes})
        assert training_job_unsupported(spec) == [], changes


def test_a_search_is_supported() -> None:
    spec = TrainingJobSpec.model_validate(
        {"datasetRef": {"name": "iris"}, "search": {"algorithms": ["svc", "knn_classifier"]}})
    assert training_job_unsupported(spec) == []


def test_a_model_deployment_drift_monitor_is_supported() -> None:
    spec = ModelDeploymentSpec.model_validate({**DEPLOYMENT, "monitoring": {"drift": True}})
    assert model_deployment_unsupported(spec) == []


def test_the_message_names_every_field_given() -> None:
    message = unsupported_message(["spec.a", "spec.b.c"])
    assert message.startswith("spec.a: not supported yet")
    assert "; spec.b.c: not supported yet" in message
