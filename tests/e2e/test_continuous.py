"""Continuous training on the cluster: a Dataset over http re-checked every minute
(spec.refreshInterval) and the TrainingJobs it drives (spec.retrain.onNewData, spec.schedule).

The source is an http server on the host's bridge address, which the node's Pods reach: an
unchanged source answers 304 and nothing is downloaded; the same content under a new ETag
makes no new version; changed content makes one, and a TrainingJob with onNewData retrains on
it once its cooldown (retrain.minInterval) lets it, after an Event saying the cooldown held it
back. A TrainingJob with a schedule starts a run when the schedule fires.
"""

from __future__ import annotations

import hashlib
import http.server
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from kubernetes import client
from sklearn.datasets import load_iris

from localkube import processes
from localkube.stack import Stack
from localkube.testing import wait_for
from tests.e2e.mlhelpers import (
    condition,
    events_for,
    kubectl_apply,
    load_example,
    read,
    wait_phase,
)

pytestmark = pytest.mark.e2e


def iris_csv(rows: slice) -> bytes:
    frame = load_iris(as_frame=True).frame.iloc[rows]
    return frame.to_csv(index=False).encode()


class Source(http.server.BaseHTTPRequestHandler):
    """The Dataset's source: a csv with an ETag, 304 to a matching If-None-Match; it records
    what each request got."""

    body: ClassVar[bytes] = b""
    etag: ClassVar[str] = ""
    answers: ClassVar[list[tuple[int, int]]] = []  # (status, body bytes sent)

    def do_GET(self) -> None:
        if self.headers.get("If-None-Match") == self.etag:
            self.answers.append((304, 0))
            self.send_response(304)
            self.send_header("ETag", self.etag)
            self.end_headers()
            return
        self.answers.append((200, len(self.body)))
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.send_header("ETag", self.etag)
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @classmethod
    def serve(cls, body: bytes, etag_salt: str = "") -> None:
        cls.body, cls.etag = body, f'"{hashlib.sha256(body).hexdigest()[:16]}{etag_salt}"'


@pytest.fixture
def source_url(mlstack: Stack) -> Iterator[str]:
    with processes.serving_http(mlstack.cluster.host_ip, Source) as base:
        yield f"{base}/iris.csv"


def dataset(url: str) -> dict[str, Any]:
    return {"apiVersion": "mlcycle.dev/v1alpha1", "kind": "Dataset",
            "metadata": {"name": "web"},
            "spec": {"source": {"url": url}, "target": "target", "refreshInterval": "1m",
                     "profile": {"enabled": False}}}


def training_job(name: str, model: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "mlcycle.dev/v1alpha1", "kind": "TrainingJob",
            "metadata": {"name": name},
            "spec": {"datasetRef": {"name": "web"}, "algorithm": "logistic_regression",
                     "validation": {"folds": 0}, "registry": {"modelName": model}, **spec}}


def status(k8s: client.ApiClient, plural: str, namespace: str, name: str) -> dict[str, Any]:
    return read(k8s, plural, namespace, name).get("status") or {}


def wait_check(k8s: client.ApiClient, namespace: str, after: str, timeout: float = 150) -> Any:
    """The Dataset's status once a refresh check newer than `after` is recorded."""
    return wait_for(f"a refresh check after {after}", lambda: (
        found if (found := status(k8s, "datasets", namespace, "web")).get(
            "lastCheckTime", "") > after else None), timeout=timeout, interval=2)


def event(k8s: client.ApiClient, namespace: str, name: str, reason: str,
          text: str = "") -> Any:
    return wait_for(f"Event {reason} on {name}", lambda: next(
        (e for e in events_for(k8s, namespace, name)
         if e.reason == reason and text in e.message), None), timeout=30, interval=1)


def runs(k8s: client.ApiClient, namespace: str, name: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = status(k8s, "trainingjobs", namespace, name).get("runs", [])
    return found


def test_refresh_checks_new_versions_and_the_retraining_they_trigger(
    mlstack: Stack, k8s: client.ApiClient, ml_namespace: str, source_url: str
) -> None:
    first, second = iris_csv(slice(0, 150)), iris_csv(slice(0, 140))
    Source.serve(first)
    Source.answers.clear()
    code, output = kubectl_apply(mlstack, ml_namespace, dataset(source_url))
    assert code == 0, output
    ready = wait_phase(k8s, "datasets", ml_namespace, "web", ("Ready", "Failed"))
    assert ready["status"]["phase"] == "Ready", ready["status"]
    v1 = ready["status"]["version"]
    assert ready["status"]["source"]["etag"] == Source.etag
    assert Source.answers == [(200, len(first))]

    model = f"cont-{ml_namespace}"[:60]
    retrain = training_job("on-data", f"{model}-d", retrain={"onNewData": True,
                                                              "minInterval": "5m"})
    scheduled = training_job("every-minute", f"{model}-s", schedule="* * * * *",
                             timeZone="Europe/Berlin", retrain={"maxRunsPerDay": 2})
    for document in (retrain, scheduled):
        code, output = kubectl_apply(mlstack, ml_namespace, document)
        assert code == 0, output

    # 1. Unchanged: the check's conditional GET is answered 304, no byte of the body is sent.
    checked = wait_check(k8s, ml_namespace, ready["status"]["lastIngestionTime"])
    assert Source.answers[1:] == [(304, 0)], Source.answers
    refreshed = condition({"status": checked}, "Refreshed")
    assert (refreshed["status"], refreshed["reason"]) == ("True", "SourceUnchanged")
    assert checked["version"] == v1 and len(checked["history"]) == 1
    event(k8s, ml_namespace, "web", "SourceUnchanged", "nothing downloaded")

    # 2. Changed content: a new version in the history, with an Event.
    Source.serve(second)
    checked = wait_check(k8s, ml_namespace, checked["lastCheckTime"])
    v2 = checked["version"]
    assert v2 != v1 and [h["version"] for h in checked["history"]] == [v2, v1]
    assert checked["rows"] == 140 and Source.answers[-1] == (200, len(second))
    event(k8s, ml_namespace, "web", "NewVersion", f"version {v2}")

    # 3. The same content under a new ETag: downloaded, hashed, no new version.
    Source.serve(second, etag_salt="-moved")
    checked = wait_check(k8s, ml_namespace, checked["lastCheckTime"])
    assert Source.answers[-1] == (200, len(second)), Source.answers
    assert checked["version"] == v2 and [h["version"] for h in checked["history"]] == [v2, v1]
    assert condition({"status": checked}, "Refreshed")["reason"] == "SameContent"
    event(k8s, ml_namespace, "web", "SameContent", "no new version")

    # 4. The schedule fired (every minute, in Berlin time): a run with trigger Schedule; then
    #    the daily limit (2 runs) skips the fires after it, each with an Event.
    fired = wait_for("a scheduled run", lambda: next(
        (r for r in runs(k8s, ml_namespace, "every-minute") if r["trigger"] == "Schedule"),
        None), timeout=180, interval=2)
    assert "fired at" in fired["reason"]
    skipped = wait_for("a fire skipped by the daily limit", lambda: next(
        (e for e in events_for(k8s, ml_namespace, "every-minute")
         if e.reason == "RetrainHeldBack" and "maxRunsPerDay 2" in e.message), None),
        timeout=180, interval=2)
    assert "skipped" in skipped.message
    assert [r["trigger"] for r in runs(k8s, ml_namespace, "every-minute")] == [
        "Schedule", "Created"]
    client.CustomObjectsApi(k8s).delete_namespaced_custom_object(
        "mlcycle.dev", "v1alpha1", ml_namespace, "trainingjobs", "every-minute")

    # 5. The new version triggers a run of on-data, held back by the cooldown first (the
    #    first run started less than 5 minutes before), with an Event, then started.
    held = event(k8s, ml_namespace, "on-data", "RetrainHeldBack", "spec.retrain.minInterval")
    assert f"new version {v2}" in held.message
    started = wait_for("the new-data run", lambda: next(
        (r for r in runs(k8s, ml_namespace, "on-data") if r["trigger"] == "NewData"), None),
        timeout=240, interval=2)
    assert started["datasetVersion"] == v2 and started["number"] == 2
    done = wait_for("the new-data run to end", lambda: (
        found if (found := runs(k8s, ml_namespace, "on-data"))[0]["phase"] != "Running"
        else None), timeout=300, interval=2)
    assert [(r["number"], r["trigger"], r["phase"]) for r in done] == [
        (2, "NewData", "Succeeded"), (1, "Created", "Succeeded")]
    assert done[0]["modelVersion"] == 2 and done[0]["gatesPassed"] is True
    assert done[0]["startTime"] <= done[0]["completionTime"]
    final = status(k8s, "trainingjobs", ml_namespace, "on-data")
    assert final["phase"] == "Succeeded" and final["datasetVersion"] == v2
    assert final["model"]["version"] == 2


def test_a_builtin_source_with_a_refresh_interval_says_it_never_changes(
    mlstack: Stack, k8s: client.ApiClient, ml_namespace: str
) -> None:
    builtin = load_example("iris/dataset.yaml", {"spec": {"refreshInterval": "1m",
                                                          "profile": {"enabled": False}}})
    code, output = kubectl_apply(mlstack, ml_namespace, builtin)
    assert code == 0, output
    ready = wait_phase(k8s, "datasets", ml_namespace, "iris", ("Ready", "Failed"))
    assert ready["status"]["phase"] == "Ready", ready["status"]
    refreshed = condition(ready, "Refreshed")
    assert (refreshed["status"], refreshed["reason"]) == ("False", "NeverChanges")
    assert refreshed["message"].startswith("spec.refreshInterval: the builtin source 'iris'")


def test_a_bad_schedule_or_time_zone_is_refused_naming_the_field(
    mlstack: Stack, k8s: client.ApiClient, ml_namespace: str
) -> None:
    no_schedule = training_job("zone-only", "unused", timeZone="Europe/Berlin")
    code, output = kubectl_apply(mlstack, ml_namespace, no_schedule)
    assert code != 0 and "timeZone applies to schedule" in output, output
    for name, changes, field in (
        ("bad-cron", {"schedule": "61 * * * *"}, "spec.schedule"),
        ("bad-zone", {"schedule": "@daily", "timeZone": "Mars/Olympus_Mons"}, "spec.timeZone"),
    ):
        code, output = kubectl_apply(mlstack, ml_namespace,
                                     training_job(name, f"{name}-{ml_namespace}", **changes))
        assert code == 0, output
        refused = wait_phase(k8s, "trainingjobs", ml_namespace, name, ("Failed",), timeout=90)
        ready = condition(refused, "Ready")
        assert (ready["status"], ready["reason"]) == ("False", "InvalidSchedule"), ready
        assert ready["message"].startswith(f"{field}: "), ready["message"]
        assert not refused["status"].get("runs")
