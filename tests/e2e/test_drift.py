"""Drift monitoring on the cluster. So far: the trainer image logs the drift reference with the
model version it registers (the serving side is tested in tests/serving_unit over a real
MLflow server; spec.monitoring.drift stays refused until the operator's reconcile exists)."""

from __future__ import annotations

import json

import pytest
from kubernetes import client
from mlflow import MlflowClient

from localkube.stack import Stack
from mlcycle_contract.drift import (
    REFERENCE_ARTIFACT,
    TAG_DRIFT_REFERENCE,
    DriftReference,
    FeatureKind,
)
from tests.e2e.mlhelpers import kubectl_apply, load_example, wait_phase

pytestmark = pytest.mark.e2e


def test_training_logs_the_drift_reference_with_the_version(
    mlstack: Stack, k8s: client.ApiClient, ml_namespace: str
) -> None:
    model_name = f"iris-drift-{ml_namespace}"
    changes = {"spec": {"registry": {"modelName": model_name}}}
    for document in (
        load_example("iris/dataset.yaml"),
        load_example("iris/trainingjob.yaml", changes),
    ):
        code, output = kubectl_apply(mlstack, ml_namespace, document)
        assert code == 0, output
    trained = wait_phase(k8s, "trainingjobs", ml_namespace, "iris-rf", ("Succeeded", "Failed"))
    assert trained["status"]["phase"] == "Succeeded", trained["status"]

    url = mlstack.services.mlflow_url
    registry = MlflowClient(tracking_uri=url, registry_uri=url)
    version = registry.get_model_version(model_name, "1")
    assert version.tags[TAG_DRIFT_REFERENCE] == REFERENCE_ARTIFACT
    path = registry.download_artifacts(version.run_id, REFERENCE_ARTIFACT)
    with open(path) as file:
        reference = DriftReference.model_validate(json.load(file))
    assert [f.kind for f in reference.features] == [FeatureKind.NUMERIC] * 4
    assert 100 <= reference.rows < 150  # the training split, not the holdout
    for feature in reference.features:
        assert feature.missing_rate == 0 and sum(feature.proportions) == pytest.approx(1)
