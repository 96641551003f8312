"""Fields the API declares and the operator does not implement yet are refused, each by name,
never accepted and ignored."""

from __future__ import annotations

from typing import Any

import pytest

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


@pytest.mark.parametrize(("changes", "path"), [
    ({"schedule": "@daily"}, "spec.schedule with spec.search"),
    ({"retrain": {"onNewData": True}}, "spec.retrain.onNewData with spec.search"),
])
def test_each_training_job_field_is_refused_by_its_path(changes: dict[str, Any],
                                                         path: str) -> None:
    spec = TrainingJobSpec.model_validate({**SEARCH, **changes})
    assert training_job_unsupported(spec) == [path]


def test_a_search_is_supported() -> None:
    spec = TrainingJobSpec.model_validate(
        {"datasetRef": {"name": "iris"}, "search": {"algorithms": ["svc", "knn_classifier"]}})
    assert training_job_unsupported(spec) == []


def test_a_model_deployment_drift_monitor_is_supported() -> None:
    spec = ModelDeploymentSpec.model_validate({**DEPLOYMENT, "monitoring": {"drift": True}})
    assert model_deployment_unsupported(spec) == []


def test_the_message_names_every_field_set() -> None:
    spec = TrainingJobSpec.model_validate(
        {**SEARCH, "schedule": "@daily", "retrain": {"onNewData": True}})
    message = unsupported_message(training_job_unsupported(spec))
    assert message.startswith("spec.schedule with spec.search: not supported yet")
    assert "; spec.retrain.onNewData with spec.search: not supported yet" in message
