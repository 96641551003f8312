"""Every algorithm of the table trains end to end: one TrainingJob per algorithm, classifiers
on the built-in iris Dataset and regressors on the built-in diabetes one, all applied at once
in one namespace. The list comes from the table, so a new algorithm is covered by this test
as soon as it is added. And the holdout they are measured on is the Dataset's spec.split."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from mlflow import MlflowClient

from localkube.stack import Stack
from mlcycle_contract.api.algorithms import ALGORITHMS, AlgorithmDefinition, Task
from mlcycle_contract.api.learning import DEFAULT_METRIC
from tests.e2e.mlhelpers import condition, kubectl_apply, load_example, wait_phase

pytestmark = pytest.mark.e2e

DATASETS = {
    Task.CLASSIFICATION: load_example("iris/dataset.yaml"),
    Task.REGRESSION: load_example(
        "iris/dataset.yaml",
        {
            "metadata": {"name": "diabetes"},
            "spec": {"source": {"builtin": "diabetes"}, "target": "progression"},
        },
    ),
}


def training_job(algorithm: AlgorithmDefinition, namespace: str) -> dict[str, Any]:
    """The iris example, with this algorithm and its defaults, on its task's Dataset."""
    document = load_example("iris/trainingjob.yaml")
    name = algorithm.name.replace("_", "-")
    document["metadata"]["name"] = name
    document["spec"] = {
        "datasetRef": {"name": DATASETS[algorithm.task]["metadata"]["name"]},
        "algorithm": algorithm.name,
        "objective": {"metric": DEFAULT_METRIC[algorithm.task].value},
        "validation": {"folds": 2},
        "registry": {"modelName": f"{name}-{namespace}"[:63].rstrip("-")},
    }
    return document


def test_every_algorithm_in_the_table_trains_and_registers_a_model(
    mlstack: Stack, k8s: client.ApiClient, ml_namespace: str
) -> None:
    jobs = [training_job(algorithm, ml_namespace) for algorithm in ALGORITHMS.values()]
    for document in [*DATASETS.values(), *jobs]:
        code, output = kubectl_apply(mlstack, ml_namespace, document)
        assert code == 0, output

    failed = {}
    for document, algorithm in zip(jobs, ALGORITHMS.values(), strict=True):
        name = document["metadata"]["name"]
        trained = wait_phase(
            k8s, "trainingjobs", ml_namespace, name, ("Succeeded", "Failed"), timeout=900
        )
        status = trained["status"]
        if status["phase"] != "Succeeded":
            failed[algorithm.name] = condition(trained, "Ready")["message"]
            continue
        assert status["model"]["version"] == 1, status
        objective = status["objective"]
        assert objective["metric"] == DEFAULT_METRIC[algorithm.task].value, status
        if algorithm.task == Task.CLASSIFICATION:
            assert objective["value"] > 0.5, (algorithm.name, objective)
    assert not failed, failed


def test_the_holdout_is_the_split_the_dataset_declares(
    mlstack: Stack, k8s: client.ApiClient, ml_namespace: str
) -> None:
    split = {"testFraction": 0.3, "seed": 11, "stratify": True}
    dataset = load_example("iris/dataset.yaml", {"spec": {"split": split}})
    job = training_job(ALGORITHMS["logistic_regression"], ml_namespace)
    for document in (dataset, job):
        code, output = kubectl_apply(mlstack, ml_namespace, document)
        assert code == 0, output

    trained = wait_phase(k8s, "trainingjobs", ml_namespace, job["metadata"]["name"],
                         ("Succeeded", "Failed"), timeout=600)
    assert trained["status"]["phase"] == "Succeeded", trained["status"]
    url = mlstack.services.mlflow_url
    run = MlflowClient(tracking_uri=url).get_run(trained["status"]["mlflow"]["runId"])
    params = run.data.params
    assert (params["split.seed"], params["split.stratify"]) == ("11", "True")
    assert params["validation.holdout_fraction"] == "0.3"
    assert params["data.holdout_rows"] == "45"
