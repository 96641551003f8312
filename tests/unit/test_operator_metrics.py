"""The operator's metrics (mlcycle.metrics): what a reconcile, a registry call and the
watched conditions record, read back from the prometheus-client registry as a scrape would."""

from __future__ import annotations

import asyncio

import kopf
import pytest
from prometheus_client import REGISTRY

from mlcycle import metrics
from mlcycle.handlers import observed
from mlcycle.metrics import HeldCondition, condition_counts, held_conditions


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_reconcile_counts_by_kind_and_outcome_and_is_timed() -> None:
    ok = sample("mlcycle_reconciles_total", kind="Probe", outcome="ok")
    retried = sample("mlcycle_reconciles_total", kind="Probe", outcome="temporary_error")
    failed = sample("mlcycle_reconciles_total", kind="Probe", outcome="error")
    timed = sample("mlcycle_reconcile_duration_seconds_count", kind="Probe")
    with metrics.reconciling("Probe"):
        pass
    with pytest.raises(kopf.TemporaryError), metrics.reconciling("Probe"):
        raise kopf.TemporaryError("later", delay=1)
    with pytest.raises(KeyError), metrics.reconciling("Probe"):
        raise KeyError("bug")
    assert sample("mlcycle_reconciles_total", kind="Probe", outcome="ok") == ok + 1
    assert sample("mlcycle_reconciles_total", kind="Probe",
                  outcome="temporary_error") == retried + 1
    assert sample("mlcycle_reconciles_total", kind="Probe", outcome="error") == failed + 1
    assert sample("mlcycle_reconcile_duration_seconds_count", kind="Probe") == timed + 3


def test_jobs_created_by_component_label() -> None:
    before = sample("mlcycle_jobs_created_total", component="train")
    metrics.job_created({"metadata": {"labels": {"c": "train"}}}, "c")
    assert sample("mlcycle_jobs_created_total", component="train") == before + 1


class Missing(Exception):
    pass


def test_registry_calls_count_user_errors_apart_from_the_registrys() -> None:
    @metrics.registry_call("probe", {Missing: metrics.NOT_FOUND})
    def lookup(outcome: str) -> str:
        if outcome == "missing":
            raise Missing(outcome)
        if outcome == "down":
            raise ConnectionError(outcome)
        return outcome

    def count(outcome: str) -> float:
        return sample("mlcycle_registry_requests_total", operation="probe", outcome=outcome)

    before = {outcome: count(outcome) for outcome in ("ok", "not_found", "error")}
    assert lookup("found") == "found"
    with pytest.raises(Missing):
        lookup("missing")
    with pytest.raises(ConnectionError):
        lookup("down")
    assert {outcome: count(outcome) - before[outcome] for outcome in before} == {
        "ok": 1, "not_found": 1, "error": 1}


def test_held_conditions_from_a_raw_status() -> None:
    status = {"conditions": [
        {"type": "Ready", "status": "False", "reason": "OOMKilled", "message": "..."},
        {"status": "True"}]}  # no type: not a condition
    assert held_conditions(status) == (HeldCondition("Ready", "False", "OOMKilled"),)
    assert held_conditions(None) == () and held_conditions({}) == ()


def test_conditions_count_objects_per_kind_type_status_and_reason() -> None:
    failed = HeldCondition("Ready", "False", "JobFailed")
    ready = HeldCondition("Ready", "True", "Succeeded")
    board = {("TrainingJob", "a", "x"): (failed,), ("TrainingJob", "b", "y"): (failed,),
             ("Dataset", "a", "x"): (ready,)}
    assert condition_counts(board) == {("TrainingJob", "Ready", "False", "JobFailed"): 2,
                                       ("Dataset", "Ready", "True", "Succeeded"): 1}


def test_the_conditions_gauge_follows_observed_and_deleted_objects() -> None:
    labels = {"kind": "Probe", "type": "Degraded", "status": "True", "reason": "Drifted"}
    status = {"conditions": [{"type": "Degraded", "status": "True", "reason": "Drifted"}]}
    metrics.CONDITIONS.observe(("Probe", "ns", "one"), status)
    metrics.CONDITIONS.observe(("Probe", "ns", "two"), status)
    assert sample("mlcycle_conditions", **labels) == 2
    metrics.CONDITIONS.observe(("Probe", "ns", "two"), {"conditions": []})
    assert sample("mlcycle_conditions", **labels) == 1
    metrics.CONDITIONS.forget(("Probe", "ns", "one"))
    assert sample("mlcycle_conditions", **labels) == 0


def test_the_watch_handler_feeds_the_gauge_and_a_deletion_leaves_it() -> None:
    labels = {"kind": "Dataset", "type": "Ready", "status": "False", "reason": "SourceGone"}
    body = kopf.Body({"apiVersion": "mlcycle.dev/v1alpha1", "kind": "Dataset",
                      "metadata": {"name": "gauged", "namespace": "ns", "uid": "u1"},
                      "status": {"conditions": [{"type": "Ready", "status": "False",
                                                 "reason": "SourceGone"}]}})
    datasets = kopf.Resource("mlcycle.dev", "v1alpha1", "datasets")
    before = sample("mlcycle_conditions", **labels)
    asyncio.run(observed(body=body, type=None, resource=datasets))  # as the watch lists it
    asyncio.run(observed(body=body, type="MODIFIED", resource=datasets))
    assert sample("mlcycle_conditions", **labels) == before + 1
    asyncio.run(observed(body=body, type="DELETED", resource=datasets))
    assert sample("mlcycle_conditions", **labels) == before
