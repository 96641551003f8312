"""Dataset refresh checks (spec.refreshInterval), without a cluster: when a check is due,
the check Job, and what each of its outcomes does to the status and which Event it posts."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from mlcycle.builders.dataset import (
    REFRESH_JOB_TTL_SECONDS,
    build_ingest_job,
    build_refresh_job,
    ingest_job_name,
    refresh_job_name,
)
from mlcycle.objects import Dataset, Invalid, parse_dataset
from mlcycle.reconcile.common import now
from mlcycle.reconcile.dataset import (
    dataset_outcome,
    ended_before,
    never_changes,
    refresh_due,
    refresh_outcome,
    reports_on_refresh,
)
from mlcycle.settings import Settings
from mlcycle_contract import environment
from mlcycle_contract.api.common import find_condition
from mlcycle_contract.api.dataset import DatasetStatus

SETTINGS = Settings(mlflow_tracking_uri="http://mlflow:5000", s3_endpoint="http://s3:9000")
URL = "http://data.example/iris.csv"
COMPLETE = [{"type": "Complete", "status": "True"}]
FAILED = [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
           "message": "Job has reached the specified backoff limit"}]
INGESTED = {"version": "v1", "snapshotURI": "s3://d/v1", "rows": 150, "columns": 5,
            "schema": [{"name": "target", "dtype": "int64"}],
            "source": {"etag": '"e1"', "lastModified": "Tue, 01 Dec 2026 00:00:00 GMT"},
            "downloadedBytes": 4000}


def dataset(source: dict[str, str] | None = None, interval: str | None = "1m",
            status: dict[str, Any] | None = None, generation: int = 1) -> Dataset:
    spec: dict[str, Any] = {"source": source or {"url": URL}, "target": "target"}
    if interval:
        spec["refreshInterval"] = interval
    parsed = parse_dataset({"metadata": {"name": "iris", "namespace": "ml", "uid": "u1",
                                         "generation": generation},
                            "spec": spec, "status": status or {}})
    assert not isinstance(parsed, Invalid), parsed
    return parsed


def job(name: str, conditions: list[dict[str, str]]) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ml"}, "status": {"conditions": conditions}}


def pod(message: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"}, "status": {
        "containerStatuses": [{"state": {"terminated": {"message": json.dumps(message)}}}]}}


def ingested(source: dict[str, str] | None = None, interval: str | None = "1m") -> Dataset:
    """The Dataset after its generation's ingestion succeeded."""
    fresh = dataset(source, interval)
    name = ingest_job_name(fresh.metadata)
    status = dataset_outcome(fresh, job(name, COMPLETE), [pod(INGESTED)]).status
    assert status.last_ingestion_time is not None
    # Two minutes ago: a check is due, as when the timer starts one.
    return replace(fresh, status=status.model_copy(update={
        "last_ingestion_time": status.last_ingestion_time - timedelta(minutes=2)}))


def env_of(manifest: dict[str, Any]) -> dict[str, Any]:
    container = manifest["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def refresh_condition(status: DatasetStatus) -> Any:
    return find_condition(status.conditions, "Refreshed")


def test_the_ingestion_stores_the_sources_validators_for_the_next_check() -> None:
    status = ingested().status
    assert status.source is not None and status.source.etag == '"e1"'
    assert status.source.last_modified == "Tue, 01 Dec 2026 00:00:00 GMT"
    assert status.last_ingestion_time is not None


def test_a_check_is_due_one_interval_after_the_last_download_or_check() -> None:
    ready = ingested()
    base = ready.status.last_ingestion_time
    assert base is not None
    assert refresh_due(ready, base + timedelta(seconds=59)) is None
    assert refresh_due(ready, base + timedelta(minutes=1)) == base
    checked = replace(ready, status=ready.status.model_copy(
        update={"last_check_time": base + timedelta(minutes=5)}))
    assert refresh_due(checked, base + timedelta(minutes=5, seconds=30)) is None
    assert refresh_due(checked, base + timedelta(minutes=6)) == base + timedelta(minutes=5)


def test_no_check_without_the_field_before_the_generation_is_ingested_or_for_a_builtin() -> None:
    later = now() + timedelta(days=1)
    assert refresh_due(ingested(interval=None), later) is None
    assert refresh_due(dataset(), later) is None  # not ingested yet
    spec_changed = ingested()
    spec_changed = replace(spec_changed, metadata=spec_changed.metadata.model_copy(
        update={"generation": 2}))
    assert refresh_due(spec_changed, later) is None  # generation 2 ingests first
    assert refresh_due(ingested({"builtin": "iris"}), later) is None


def test_the_check_job_sends_the_validators_and_is_named_after_its_base() -> None:
    ready = ingested()
    base = ready.status.last_ingestion_time
    assert base is not None
    check = build_refresh_job(ready, SETTINGS, base)
    name = check["metadata"]["name"]
    assert name == refresh_job_name(ready.metadata, base) != ingest_job_name(ready.metadata)
    assert json.loads(env_of(check)[environment.SOURCE_VALIDATORS.name]) == {
        "etag": '"e1"', "lastModified": "Tue, 01 Dec 2026 00:00:00 GMT"}
    assert check["spec"]["ttlSecondsAfterFinished"] == REFRESH_JOB_TTL_SECONDS
    assert environment.SOURCE_VALIDATORS.name not in env_of(build_ingest_job(ready, SETTINGS))
    assert reports_on_refresh(ready, name)
    assert not reports_on_refresh(ready, ingest_job_name(ready.metadata))
    assert refresh_job_name(ready.metadata, base + timedelta(minutes=1)) != name


def check(ready: Dataset, conditions: list[dict[str, str]],
          message: dict[str, Any] | None) -> Any:
    base = ready.status.last_ingestion_time
    assert base is not None
    name = refresh_job_name(ready.metadata, base)
    outcome = refresh_outcome(ready, job(name, conditions), [pod(message)] if message else [])
    assert outcome is not None
    return outcome


def test_an_unchanged_source_is_recorded_with_an_event_and_downloads_nothing() -> None:
    ready = ingested()
    outcome = check(ready, COMPLETE, {"unchanged": True,
                                      "evidence": f"GET {URL} answered 304 Not Modified"})
    status = outcome.status
    assert status.last_check_time is not None
    assert status.last_ingestion_time == ready.status.last_ingestion_time
    assert status.version == "v1" and len(status.history) == 1 and status.phase == "Ready"
    assert refresh_condition(status).reason == "SourceUnchanged"
    [event] = outcome.events
    assert (event.type, event.reason) == ("Normal", "SourceUnchanged")
    assert "304 Not Modified" in event.message and "nothing downloaded" in event.message
    # Recorded: the next check counts from this one and has another name.
    after = replace(ready, status=status)
    assert refresh_due(after, now() + timedelta(seconds=30)) is None
    assert not reports_on_refresh(after, outcome.status.refresh_job_name)


def test_the_same_content_under_new_headers_makes_no_new_version() -> None:
    ready = ingested()
    outcome = check(ready, COMPLETE, {**INGESTED, "source": {"etag": '"e2"'}})
    status = outcome.status
    assert status.version == "v1" and [r.version for r in status.history] == ["v1"]
    assert status.history[0].created_at == ready.status.history[0].created_at
    assert status.source is not None and status.source.etag == '"e2"'
    assert refresh_condition(status).reason == "SameContent"
    assert [e.reason for e in outcome.events] == ["SameContent"]
    assert "no new version" in outcome.events[0].message


def test_changed_content_becomes_a_new_version_with_an_event() -> None:
    ready = ingested()
    outcome = check(ready, COMPLETE, {**INGESTED, "version": "v2", "snapshotURI": "s3://d/v2",
                                      "rows": 180, "source": {"etag": '"e3"'}})
    status = outcome.status
    assert status.version == "v2" and status.snapshot_uri == "s3://d/v2" and status.rows == 180
    assert [r.version for r in status.history] == ["v2", "v1"]
    assert status.phase == "Ready"
    [event] = outcome.events
    assert (event.type, event.reason) == ("Normal", "NewVersion")
    assert "version v2" in event.message and "replaces version v1" in event.message


def test_a_failed_check_keeps_the_current_version_ready_and_warns() -> None:
    ready = ingested()
    outcome = check(ready, FAILED, {"error": {"reason": "SourceUnavailable",
                                              "message": f"GET {URL} answered HTTP 503"}})
    status = outcome.status
    assert status.phase == "Ready" and status.version == "v1"
    assert next(c for c in status.conditions if c.type == "Ready").status == "True"
    condition = refresh_condition(status)
    assert (condition.status, condition.reason) == ("False", "SourceUnavailable")
    [event] = outcome.events
    assert event.type == "Warning" and "HTTP 503" in event.message
    assert status.last_check_time is not None  # retried at the next interval, not at once


def test_a_running_check_changes_nothing() -> None:
    ready = ingested()
    base = ready.status.last_ingestion_time
    assert base is not None
    assert refresh_outcome(ready, job(refresh_job_name(ready.metadata, base), []), []) is None


def test_a_builtin_source_with_an_interval_says_it_never_changes() -> None:
    ready = ingested({"builtin": "iris"})
    condition = refresh_condition(ready.status)
    assert (condition.status, condition.reason) == ("False", "NeverChanges")
    assert condition.message.startswith("spec.refreshInterval: ")
    assert "never changes" in condition.message
    assert never_changes(ready) is None  # said once
    without = ingested({"builtin": "iris"}, interval=None)
    assert refresh_condition(without.status) is None


def test_the_timer_reports_a_checks_end_only_when_its_event_is_overdue() -> None:
    ended = {"status": {"conditions": [{"type": "Complete", "status": "True",
                                        "lastTransitionTime": "2026-12-01T01:00:00+00:00"}]}}
    moment = datetime(2026, 12, 1, 1, 0, 10, tzinfo=UTC)
    assert ended_before(ended, moment)
    assert not ended_before(ended, moment - timedelta(seconds=20))
    assert not ended_before({"status": {}}, moment)
