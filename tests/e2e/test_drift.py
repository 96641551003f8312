"""Drift monitoring on the cluster: the trainer image logs the drift reference with the model
version it registers; a ModelDeployment with spec.monitoring.drift has its two replicas'
counts added up by the operator into status.drift and the Drifted condition (in-distribution
traffic: no drift; one feature shifted: drift, naming it, with an Event and a plot in the
version's run); the TrainingJob that produced the version retrains (spec.retrain.onDrift),
and the drift of the version that run promotes is held back by maxRunsPerDay with an Event;
one whose models nobody monitors says so; a version without a
reference is served unmonitored with Drifted=Unknown, reason NoReference."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pandas as pd
import pytest
from kubernetes import client
from mlflow import MlflowClient
from sklearn.datasets import load_iris

from localkube.stack import Stack
from localkube.testing import wait_for
from mlcycle_contract.drift import (
    DRIFT_MISSING_SHIFT,
    REFERENCE_ARTIFACT,
    TAG_DRIFT_REFERENCE,
    DriftReference,
    FeatureKind,
)
from tests.e2e.mlhelpers import events_for, kubectl_apply, load_example, read, wait_phase

pytestmark = pytest.mark.e2e

SHIFTED = "petal width (cm)"
# iris has no missing values: missingShiftThreshold changes no verdict, only the Pods' env.
MONITORING = {"drift": True, "minRows": 100, "checkIntervalSeconds": 5,
              "missingShiftThreshold": 0.2}


def serving_addresses(k8s: client.ApiClient, namespace: str, name: str) -> list[str]:
    pods = client.CoreV1Api(k8s).list_namespaced_pod(
        namespace, label_selector=f"mlcycle.dev/model-deployment={name}").items
    return [pod.status.pod_ip for pod in pods if pod.status.pod_ip]


def ready_addresses(k8s: client.ApiClient, namespace: str, name: str,
                    version: int) -> list[str]:
    """Pod IPs of the ready replicas serving this version."""
    pods = client.CoreV1Api(k8s).list_namespaced_pod(namespace, label_selector=(
        f"mlcycle.dev/model-deployment={name},mlcycle.dev/model-version={version}")).items
    return [pod.status.pod_ip for pod in pods if pod.metadata.deletion_timestamp is None
            and any(c.type == "Ready" and c.status == "True"
                    for c in pod.status.conditions or [])]


def served(k8s: client.ApiClient, namespace: str, name: str,
           version: int) -> dict[str, Any] | None:
    """The ModelDeployment once this version serves on all its replicas."""
    found = read(k8s, "modeldeployments", namespace, name)
    status = found.get("status") or {}
    return found if (status.get("servedVersion") == version
                     and status.get("phase") == "Available") else None


def predict(address: str, rows: pd.DataFrame) -> None:
    response = httpx.post(f"http://{address}:8080/invocations", timeout=30, json={
        "dataframe_split": {"columns": list(rows.columns), "data": rows.values.tolist()}})
    assert response.status_code == 200, response.text


def send_to_each(addresses: list[str], rows: pd.DataFrame) -> None:
    """Half of the rows to each replica, in requests of 15 rows."""
    for start in range(0, len(rows), 15):
        predict(addresses[(start // 15) % len(addresses)], rows.iloc[start:start + 15])


def drifted(k8s: client.ApiClient, namespace: str, name: str,
            reason: str) -> dict[str, Any] | None:
    """The ModelDeployment once its Drifted condition has this reason."""
    found = read(k8s, "modeldeployments", namespace, name)
    conditions = (found.get("status") or {}).get("conditions") or []
    return found if any(c["type"] == "Drifted" and c["reason"] == reason
                        for c in conditions) else None


def drift_over(k8s: client.ApiClient, namespace: str, name: str, reason: str,
               rows: int) -> dict[str, Any] | None:
    """The ModelDeployment once a drift check with this reason counted `rows` rows: a check
    that ran while the rows were still being sent saw fewer, and the next one sees them all."""
    found = drifted(k8s, namespace, name, reason)
    return found if found is not None and found["status"]["drift"]["rows"] == rows else None


def condition_of(resource: dict[str, Any], type_: str) -> dict[str, Any]:
    found = condition_if(resource, type_)
    assert found is not None, resource.get("status")
    return found


def condition_if(resource: dict[str, Any], type_: str) -> dict[str, Any] | None:
    conditions = (resource.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == type_), None)


def drift_run(k8s: client.ApiClient, namespace: str, name: str) -> dict[str, Any] | None:
    """The TrainingJob once its latest run was started by drift."""
    found = read(k8s, "trainingjobs", namespace, name)
    runs = (found.get("status") or {}).get("runs") or []
    return found if runs and runs[0]["trigger"] == "Drift" else None


def test_a_served_version_is_monitored_for_drift_over_all_replicas(
    mlstack: Stack, k8s: client.ApiClient, ml_namespace: str
) -> None:
    started = time.monotonic()
    model_name = f"iris-drift-{ml_namespace}"
    retrain = {"onDrift": True, "maxRunsPerDay": 2}
    for document in (
        load_example("iris/dataset.yaml"),
        load_example("iris/trainingjob.yaml", {"spec": {
            "registry": {"modelName": model_name}, "retrain": retrain}}),
        # The same, but no ModelDeployment serves its models.
        load_example("iris/trainingjob.yaml", {"metadata": {"name": "iris-unserved"}, "spec": {
            "registry": {"modelName": f"{model_name}-unserved"}, "retrain": retrain}}),
        load_example("iris/modeldeployment.yaml", {"spec": {
            "model": {"name": model_name}, "monitoring": MONITORING}}),
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

    wait_phase(k8s, "modeldeployments", ml_namespace, "iris", ("Available",), timeout=300)
    addresses = serving_addresses(k8s, ml_namespace, "iris")
    assert len(addresses) == 2
    pod = client.CoreV1Api(k8s).list_namespaced_pod(
        ml_namespace, label_selector="mlcycle.dev/model-deployment=iris").items[0]
    env = {e.name: e.value for e in pod.spec.containers[0].env}
    assert env[DRIFT_MISSING_SHIFT.name] == "0.2"  # a threshold besides PSI reaches the server
    iris = load_iris(as_frame=True).data

    # In distribution: 75 rows per replica, under minRows 100 alone, 150 together.
    send_to_each(addresses, iris)
    calm = wait_for("Drifted=False NoDrift over 150 rows", lambda: drift_over(
        k8s, ml_namespace, "iris", "NoDrift", 150), timeout=60, interval=2)
    drift = calm["status"]["drift"]
    assert (drift["version"], drift["rows"], drift["replicas"]) == (1, 150, 2)
    assert drift["detected"] is False and drift["since"] and drift["checkedTime"]
    assert [f["name"] for f in drift["features"]] == list(iris.columns)
    assert all(f["score"] < 0.2 for f in drift["features"]), drift["features"]
    assert condition_of(calm, "Drifted")["status"] == "False"

    # One feature shifted by about 2.6 standard deviations; the others as in training.
    shifted = iris.assign(**{SHIFTED: iris[SHIFTED] + 2.0})
    send_to_each(addresses, pd.concat([shifted, shifted]))
    alarm = wait_for("Drifted=True over 450 rows", lambda: drift_over(
        k8s, ml_namespace, "iris", "DriftDetected", 450), timeout=60, interval=2)
    drift = alarm["status"]["drift"]
    assert drift["detected"] is True and drift["detectedTime"]
    assert (drift["rows"], drift["replicas"]) == (450, 2)
    assert [f["name"] for f in drift["features"] if f["drifted"]] == [SHIFTED]
    message = condition_of(alarm, "Drifted")["message"]
    assert f"drift in {SHIFTED} (PSI" in message and "over 450 rows from 2 replica" in message
    assert condition_of(alarm, "Ready")["status"] == "True"
    plot = drift["plot"]  # reference against live, in the served version's run
    assert plot["runId"] == version.run_id
    assert plot["artifactPath"].startswith("drift/detections/version-1-")
    logged = {a.path for a in registry.list_artifacts(version.run_id, "drift/detections")}
    assert {plot["artifactPath"], plot["artifactPath"].replace(".png", ".json")} <= logged
    events = [e for e in events_for(k8s, ml_namespace, "iris") if e.reason == "DriftDetected"]
    assert len(events) == 1 and events[0].type == "Warning" and SHIFTED in events[0].message
    assert drift["trainingJobUid"] == trained["metadata"]["uid"]  # the version's lineage

    # spec.retrain.onDrift: the TrainingJob that produced the served version retrains.
    retrained = wait_for("a run triggered by drift", lambda: drift_run(
        k8s, ml_namespace, "iris-rf"), timeout=60, interval=2)
    run = retrained["status"]["runs"][0]
    assert run["number"] == 2 and run["phase"] == "Running"
    assert run["reason"].startswith(f"ModelDeployment iris reports drift of model {model_name} "
                                    "version 1") and SHIFTED in run["reason"]
    assert condition_of(retrained, "DriftMonitored")["reason"] == "Monitored"
    assert any(e.reason == "RetrainStarted" and "(Drift)" in e.message
               for e in events_for(k8s, ml_namespace, "iris-rf"))
    unserved = wait_phase(k8s, "trainingjobs", ml_namespace, "iris-unserved", ("Succeeded",))
    watched = wait_for("DriftMonitored on iris-unserved", lambda: condition_if(
        read(k8s, "trainingjobs", ml_namespace, "iris-unserved"), "DriftMonitored"), timeout=30)
    assert (watched["status"], watched["reason"]) == ("False", "NotMonitored")
    assert watched["message"].startswith("spec.retrain.onDrift: no ModelDeployment with "
                                         "spec.monitoring.drift serves")
    assert [r["trigger"] for r in unserved["status"]["runs"]] == ["Created"]

    # A version without a reference (its tag removed, as before references existed) is served
    # unmonitored and says so.
    registry.delete_model_version_tag(model_name, "1", TAG_DRIFT_REFERENCE)
    code, output = kubectl_apply(mlstack, ml_namespace, load_example(
        "iris/modeldeployment.yaml", {"metadata": {"name": "iris-old"}, "spec": {
            "model": {"name": model_name, "alias": None, "version": 1}, "replicas": 1,
            "monitoring": MONITORING}}))
    assert code == 0, output
    wait_phase(k8s, "modeldeployments", ml_namespace, "iris-old", ("Available",), timeout=300)
    unmonitored = wait_for("Drifted NoReference", lambda: drifted(
        k8s, ml_namespace, "iris-old", "NoReference"), timeout=60, interval=2)
    state = condition_of(unmonitored, "Drifted")
    assert state["status"] == "Unknown" and state["message"].startswith(
        f"spec.monitoring.drift: model {model_name} version 1 has no drift reference")
    assert condition_of(unmonitored, "Ready")["status"] == "True"
    assert "drift" not in unmonitored["status"]
    predict(serving_addresses(k8s, ml_namespace, "iris-old")[0], iris.iloc[:5])
    assert any(e.reason == "NoReference" for e in events_for(k8s, ml_namespace, "iris-old"))

    # Run 2 promotes version 2, which rolls out; its drift is held back by maxRunsPerDay 2.
    wait_for("version 2 served", lambda: served(k8s, ml_namespace, "iris", 2), timeout=240)
    send_to_each(ready_addresses(k8s, ml_namespace, "iris", 2), pd.concat([shifted, shifted]))
    held = wait_for("drift held back", lambda: next((
        e for e in events_for(k8s, ml_namespace, "iris-rf") if e.reason == "RetrainHeldBack"
        and "version 2" in e.message), None), timeout=90, interval=2)
    assert "held back, spec.retrain.maxRunsPerDay 2: 2 runs started" in held.message
    after = read(k8s, "trainingjobs", ml_namespace, "iris-rf")["status"]
    assert [r["trigger"] for r in after["runs"]] == ["Drift", "Created"]
    assert [h["trigger"] for h in after["heldBack"]] == ["Drift"]
    print(f"drift e2e: {time.monotonic() - started:.0f} s")
