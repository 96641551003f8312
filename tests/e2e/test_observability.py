"""The running operator's health and metrics on the local cluster: /healthz reports every
watcher alive, and /metrics counts an iris Dataset's ingestion (its reconciles, its Job, the
Ready condition it reaches)."""

from __future__ import annotations

import json
import urllib.request

import pytest
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from localkube import stack
from localkube.stack import Stack
from localkube.testing import wait_for
from mlcycle.health import WATCHED_RESOURCES, expected_watchers
from tests.e2e.mlhelpers import kubectl_apply, load_example, wait_phase

pytestmark = pytest.mark.e2e
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def healthz(url: str) -> dict[str, object] | None:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=5) as answer:
            report: dict[str, object] = json.loads(answer.read())
            return report
    except OSError:  # not listening yet, or 500 while a watcher is not running
        return None


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_healthz_reports_every_watcher_and_metrics_count_an_ingestion(
    mlstack: Stack, k8s: client.ApiClient, ml_namespace: str
) -> None:
    health_url, metrics_url = stack.operator_urls(mlstack)
    report = wait_for("the operator's /healthz", lambda: healthz(health_url), timeout=120)
    # The stack's operator serves every namespace: one cluster-wide watcher per resource.
    watchers = report["watchers"]
    assert isinstance(watchers, list)
    assert sorted(watchers) == sorted(expected_watchers(WATCHED_RESOURCES, []))

    before = scrape(metrics_url)
    code, output = kubectl_apply(mlstack, ml_namespace, load_example("iris/dataset.yaml"))
    assert code == 0, output
    dataset = wait_phase(k8s, "datasets", ml_namespace, "iris", ("Ready", "Failed"))
    assert dataset["status"]["phase"] == "Ready", dataset["status"]

    ready = {"kind": "Dataset", "type": "Ready", "status": "True",
             "reason": next(c["reason"] for c in dataset["status"]["conditions"]
                            if c["type"] == "Ready")}

    def counted_ready() -> Samples | None:
        """The watch brings the Ready status to the conditions gauge just after it is written."""
        samples = scrape(metrics_url)
        more = (value(samples, "mlcycle_conditions", **ready)
                > value(before, "mlcycle_conditions", **ready))
        return samples if more else None

    after = wait_for("the Ready Dataset on /metrics", counted_ready, timeout=30)

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("mlcycle_reconciles_total", kind="Dataset", outcome="ok") >= 2  # create, Job
    assert grew("mlcycle_reconcile_duration_seconds_count", kind="Dataset") >= 2
    assert grew("mlcycle_jobs_created_total", component="ingest") >= 1  # other tests' too
    assert value(after, "process_resident_memory_bytes") > 0
