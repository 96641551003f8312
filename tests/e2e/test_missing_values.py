"""Missing values on the cluster: a Dataset with missing numbers and missing categories (a CSV
in the namespace's own prefix of MinIO) is trained into the trainer's imputing pipeline,
served from the serving image, and each protocol takes a JSON null as a missing value and
answers exactly what the registered model predicts."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import httpx
import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
from kubernetes import client

from localkube.stack import Stack
from tests.e2e.mlhelpers import kubectl_apply, storage, wait_phase

pytestmark = pytest.mark.e2e

COLUMNS = ["age", "income", "city", "plan"]
ROWS: list[list[Any]] = [
    [None, 52_000.0, "paris", "gold"],
    [41.0, None, None, "basic"],
    [29.0, 38_000.0, "lyon", None],
    [None, None, None, None],
    [35.0, 61_000.0, "nice", "gold"],
]


def churn_csv(rows: int = 400, seed: int = 0) -> bytes:
    """Churn that follows plan and income, with a tenth of every feature missing."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "age": rng.integers(18, 70, rows).astype(float),
        "income": rng.normal(50_000, 12_000, rows).round(),
        "city": rng.choice(["paris", "lyon", "nice", "lille"], rows),
        "plan": rng.choice(["basic", "gold", "silver"], rows),
    })
    frame["churned"] = ((frame["plan"] == "basic") | (frame["income"] < 40_000)).astype(int)
    for column in COLUMNS:
        frame.loc[rng.random(rows) < 0.1, column] = None
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()


def records(rows: list[list[Any]]) -> list[dict[str, Any]]:
    return [dict(zip(COLUMNS, row, strict=True)) for row in rows]


def v2_columns(rows: list[list[Any]]) -> dict[str, Any]:
    types = {"age": "FP64", "income": "FP64", "city": "BYTES", "plan": "BYTES"}
    return {"inputs": [{"name": name, "shape": [len(rows)], "datatype": types[name],
                        "data": [row[j] for row in rows]} for j, name in enumerate(COLUMNS)]}


def requests_for(model: str) -> dict[str, tuple[str, Callable[[list[list[Any]]], Any]]]:
    return {
        "mlflow dataframe_split": ("/invocations", lambda rows: {
            "dataframe_split": {"columns": COLUMNS, "data": rows}}),
        "mlflow dataframe_records": ("/invocations", lambda rows: {
            "dataframe_records": records(rows)}),
        "kserve v1": (f"/v1/models/{model}:predict", lambda rows: {"instances": records(rows)}),
        "open inference v2": (f"/v2/models/{model}/infer", v2_columns),
    }


def test_nulls_are_served_as_missing_values_in_every_protocol(
    mlstack: Stack, k8s: client.ApiClient, ml_namespace: str
) -> None:
    key = f"datasets/{ml_namespace}/raw/churn.csv"
    storage(mlstack).put_object(Bucket=mlstack.services.data_bucket, Key=key, Body=churn_csv())
    model = f"churn-{ml_namespace}"
    documents = [
        {"apiVersion": "mlcycle.dev/v1alpha1", "kind": "Dataset", "metadata": {"name": "churn"},
         "spec": {"source": {"s3": f"s3://{mlstack.services.data_bucket}/{key}"},
                  "target": "churned"}},
        {"apiVersion": "mlcycle.dev/v1alpha1", "kind": "TrainingJob",
         "metadata": {"name": "churn-rf"},
         "spec": {"datasetRef": {"name": "churn"}, "algorithm": "random_forest_classifier",
                  "hyperparameters": {"n_estimators": 30, "random_state": 0},
                  "objective": {"metric": "accuracy"},
                  "registry": {"modelName": model, "alias": "champion"}}},
        {"apiVersion": "mlcycle.dev/v1alpha1", "kind": "ModelDeployment",
         "metadata": {"name": "churn"},
         "spec": {"model": {"name": model, "alias": "champion"}, "replicas": 1}},
    ]
    for document in documents:
        code, output = kubectl_apply(mlstack, ml_namespace, document)
        assert code == 0, output
    trained = wait_phase(k8s, "trainingjobs", ml_namespace, "churn-rf", ("Succeeded", "Failed"))
    assert trained["status"]["phase"] == "Succeeded", trained["status"]

    wait_phase(k8s, "modeldeployments", ml_namespace, "churn", ("Available",), timeout=300)
    mlflow.set_tracking_uri(mlstack.services.mlflow_url)
    pipeline = mlflow.sklearn.load_model(f"models:/{model}/1")
    frame = pd.DataFrame(ROWS, columns=COLUMNS).astype(
        {"age": float, "income": float, "city": object, "plan": object})
    expected = [int(v) for v in pipeline.predict(frame.where(frame.notna(), np.nan))]

    (pod,) = [p for p in client.CoreV1Api(k8s).list_namespaced_pod(
        ml_namespace, label_selector="mlcycle.dev/model-deployment=churn").items
        if p.metadata.deletion_timestamp is None]
    for protocol, (path, body) in requests_for(model).items():
        response = httpx.post(f"http://{pod.status.pod_ip}:8080{path}", json=body(ROWS),
                              timeout=30)
        assert response.status_code == 200, (protocol, response.text)
        answer = response.json()
        predicted = answer["outputs"][0]["data"] if "outputs" in answer \
            else answer["predictions"]
        assert [int(v) for v in predicted] == expected, protocol
