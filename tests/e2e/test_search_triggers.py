"""Retraining a search on the cluster: a 4-trial search over a Dataset served over http and
re-checked every minute (spec.refreshInterval), with spec.retrain.onNewData. When the data
changes, the Dataset's new version starts run 2 by itself (trigger NewData): a new study whose
trials run again on the new version, and whose best trial becomes model version 2; status.runs
records both runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from mlflow.tracking import MlflowClient

from localkube import processes
from localkube.stack import Stack
from localkube.testing import wait_for
from mlcycle_contract import environment as contract
from tests.e2e.mlhelpers import events_for, kubectl_apply, read, wait_phase
from tests.e2e.test_continuous import Source, dataset, iris_csv

pytestmark = pytest.mark.e2e

NAME = "search-on-data"


class SearchSource(Source):
    """The Dataset's source, with its own content (ClassVars set on this class)."""


@pytest.fixture
def search_source_url(mlstack: Stack) -> Iterator[str]:
    with processes.serving_http(mlstack.cluster.host_ip, SearchSource) as base:
        yield f"{base}/iris.csv"


def search(model: str) -> dict[str, Any]:
    return {"apiVersion": "mlcycle.dev/v1alpha1", "kind": "TrainingJob",
            "metadata": {"name": NAME},
            "spec": {"datasetRef": {"name": "web"}, "validation": {"folds": 3},
                     "search": {"algorithms": ["logistic_regression", "decision_tree_classifier"],
                                "maxTrials": 4, "parallelism": 1, "pruner": "none", "seed": 5},
                     "retrain": {"onNewData": True}, "registry": {"modelName": model}}}


def status(k8s: client.ApiClient, namespace: str) -> dict[str, Any]:
    found: dict[str, Any] = read(k8s, "trainingjobs", namespace, NAME).get("status") or {}
    return found


def test_new_data_reruns_a_search_as_a_new_study_and_registers_a_second_version(
    mlstack: Stack, k8s: client.ApiClient, ml_namespace: str, search_source_url: str
) -> None:
    SearchSource.serve(iris_csv(slice(0, 150)))
    code, output = kubectl_apply(mlstack, ml_namespace, dataset(search_source_url))
    assert code == 0, output
    ready = wait_phase(k8s, "datasets", ml_namespace, "web", ("Ready", "Failed"))
    assert ready["status"]["phase"] == "Ready", ready["status"]
    v1 = ready["status"]["version"]
    model = f"search-data-{ml_namespace}"[:60]
    code, output = kubectl_apply(mlstack, ml_namespace, search(model))
    assert code == 0, output

    # Run 1 is recorded as its study starts, on v1; the data then changes while it runs (the
    # next refresh check, within a minute, makes v2).
    first = wait_for("run 1 recorded", lambda: (
        found if (found := status(k8s, ml_namespace)).get("runs") else None),
        timeout=120, interval=2)
    assert [(r["number"], r["trigger"], r["datasetVersion"]) for r in first["runs"]] == [
        (1, "Created", v1)]
    SearchSource.serve(iris_csv(slice(0, 140)))

    def second_run_ended() -> list[dict[str, Any]] | None:
        runs: list[dict[str, Any]] = status(k8s, ml_namespace).get("runs", [])
        return runs if len(runs) == 2 and runs[0]["phase"] != "Running" else None

    runs = wait_for("run 2, started by the new version, to end", second_run_ended,
                    timeout=420, interval=3)
    v2 = read(k8s, "datasets", ml_namespace, "web")["status"]["version"]
    assert v2 != v1
    assert [(r["number"], r["trigger"], r["phase"], r["datasetVersion"], r["modelVersion"],
             r["gatesPassed"]) for r in runs] == [
        (2, "NewData", "Succeeded", v2, 2, True), (1, "Created", "Succeeded", v1, 1, True)]
    assert f"new version {v2}" in runs[0]["reason"]
    assert runs[1]["completionTime"] <= runs[0]["startTime"] <= runs[0]["completionTime"]
    final = status(k8s, ml_namespace)
    assert final["phase"] == "Succeeded" and final["datasetVersion"] == v2
    assert final["model"]["version"] == 2 and final["progress"]["trials"] == "4/4"
    assert "RetrainStarted" in {e.reason for e in events_for(k8s, ml_namespace, NAME)}

    # A study per run: run 1's and run 2's, each with its own 4 trials in MLflow.
    tracking = MlflowClient(tracking_uri=mlstack.services.mlflow_url,
                            registry_uri=mlstack.services.mlflow_url)
    experiment = final["mlflow"]["experimentId"]
    parents = tracking.search_runs(
        [experiment], filter_string=f"tags.`{contract.TAG_SEARCH_ROLE}` = 'parent'")
    studies = {p.data.tags[contract.TAG_SEARCH_STUDY] for p in parents}
    assert len(studies) == 2 and final["study"] in studies, studies
    for study in studies:
        trials = tracking.search_runs([experiment], filter_string=(
            f"tags.`{contract.TAG_SEARCH_STUDY}` = '{study}' and "
            f"tags.`{contract.TAG_SEARCH_ROLE}` = 'trial'"))
        assert len(trials) == 4, (study, len(trials))
    versions = tracking.search_model_versions(f"name = '{model}'")
    assert sorted(v.version for v in versions) == ["1", "2"]
