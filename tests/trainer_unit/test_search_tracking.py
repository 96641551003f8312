"""A search's MLflow runs through MLflow's REST API without the `mlflow` package: the same
requests MlflowClient makes, every field of the parent and trial runs, MLflow's retries and
error codes, no credential in an error, and no `mlflow` import on the worker's path."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from urllib3.util import Retry

from mlcycle_contract.api.search import TrialState
from mlcycle_trainer.errors import InvalidInput, Transient
from mlcycle_trainer.mlflow_rest import Credentials, Metric, MlflowRest
from mlcycle_trainer.search_tracking import SearchTracking, ensure_experiment, trial_params
from mlcycle_trainer.storage import ObjectMissing, S3Location
from tests.trainer_unit.fake_mlflow import Answer, FakeMlflow
from tests.trainer_unit.memory_store import MemoryStore as Memory

PASSWORD = "s3cret-Pa55"
NO_WAIT = Retry(total=3, backoff_factor=0, status_forcelist=[503], allowed_methods=None,
                raise_on_status=True)


class MemoryStore(Memory):
    def get(self, location: S3Location) -> bytes:
        try:
            return super().get(location)
        except KeyError:
            raise ObjectMissing(location.uri) from None


@pytest.fixture
def fake() -> Iterator[FakeMlflow]:
    server = FakeMlflow()
    yield server
    server.close()


def _client(fake: FakeMlflow, retry: Retry = NO_WAIT) -> MlflowRest:
    return MlflowRest(fake.url, Credentials("ns-user", PASSWORD), retry=retry)


def test_each_call_is_the_request_mlflow_s_client_makes(
    fake: FakeMlflow, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.entities import Metric as MlflowMetric
    from mlflow.entities import Param, RunTag
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", fake.url)
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "ns-user")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
    monkeypatch.setenv("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    tags = {"mlflow.parentRunId": "parent", "mlcycle.trial.number": "3"}
    metrics = [Metric("accuracy_running_mean", 0.5, 1700, 0), Metric("accuracy_running_mean",
               0.625, 1700, 1), Metric("accuracy", 0.75, 1700, 0), Metric("loss", float("nan"),
               1700, 2)]
    params = {"algorithm": "svc", "C": "0.5"}
    end_tags = {"mlcycle.trial.state": "Failed", "mlcycle.trial.error": "ValueError: no"}

    # Not from the environment alone: another test may have set mlflow's process-wide URI.
    official = MlflowClient(tracking_uri=fake.url)
    official.create_run("7", start_time=1600, tags=tags, run_name="trial-3")
    official.log_batch("run-0", metrics=[MlflowMetric(m.key, m.value, m.timestamp, m.step)
                                         for m in metrics],
                       params=[Param(k, v) for k, v in params.items()],
                       tags=[RunTag(k, v) for k, v in end_tags.items()])
    official.log_batch("run-0", tags=[RunTag(k, v) for k, v in end_tags.items()])
    official.set_terminated("run-0", "KILLED", end_time=1800)
    official.delete_run("run-0")
    official.search_runs(["7"], filter_string="tags.`a` = 'b'", max_results=1)
    official.get_experiment_by_name("ns/job")
    official.create_experiment("ns/other")
    theirs = list(fake.requests)
    fake.requests.clear()

    ours = _client(fake)
    ours.create_run("7", "trial-3", tags, 1600)
    ours.log_batch("run-1", metrics, params, end_tags)
    ours.log_batch("run-1", [], {}, end_tags)
    ours.update_run("run-1", "KILLED", 1800)
    ours.delete_run("run-1")
    ours.search_runs(["7"], "tags.`a` = 'b'", 1)
    ours.experiment_by_name("ns/job")
    ours.create_experiment("ns/other")

    def comparable(requests: list[Any]) -> list[Any]:
        return [(r.method, r.endpoint, json.loads(json.dumps(r.body).replace("run-1", "run-0")),
                 r.authorization) for r in requests]


    assert comparable(fake.requests) == comparable(theirs)
    assert fake.requests[0].authorization == "Basic " + base64.b64encode(
        f"ns-user:{PASSWORD}".encode()).decode()


def _open(fake: FakeMlflow, store: MemoryStore) -> SearchTracking:
    return SearchTracking.open(_client(fake), "7", "study-1", "job-search",
                               {"mlcycle.trainingjob.name": "job"}, store,  # type: ignore[arg-type]
                               S3Location("b", "study/parent-run.json"))


def test_the_parent_and_trial_runs_carry_every_field(fake: FakeMlflow) -> None:
    store = MemoryStore()
    runs = _open(fake, store)
    (parent,) = fake.sent("runs/create")
    assert parent["run_name"] == "job-search" and parent["experiment_id"] == "7"
    assert parent["tags"] == [{"key": "mlcycle.trainingjob.name", "value": "job"},
                              {"key": "mlcycle.search.study", "value": "study-1"},
                              {"key": "mlcycle.search.role", "value": "parent"}]
    assert json.loads(store.objects["study/parent-run.json"]) == {"runId": "run-0"}

    run_id = runs.start_trial(4, "svc", {"mlcycle.trial.worker": "pod-a1b2c3"}).result()
    assert run_id == "run-1"
    trial = fake.sent("runs/create")[1]
    assert trial["run_name"] == "trial-4"
    assert {t["key"]: t["value"] for t in trial["tags"]} == {
        "mlcycle.trial.worker": "pod-a1b2c3", "mlflow.parentRunId": "run-0",
        "mlcycle.search.study": "study-1", "mlcycle.search.role": "trial",
        "mlcycle.trial.number": "4", "mlcycle.trial.algorithm": "svc",
        "mlcycle.trial.state": "Running"}

    runs.end_trial(run_id, TrialState.COMPLETE, "accuracy", {1: 0.75, 0: 0.5}, 0.8, None,
                   trial_params("svc", {"C": 0.5, "kernel": "rbf"}))
    (batch,) = fake.sent("runs/log-batch")
    assert [(m["key"], m["value"], m["step"]) for m in batch["metrics"]] == [
        ("accuracy_running_mean", 0.5, 0), ("accuracy_running_mean", 0.75, 1),
        ("accuracy", 0.8, 0)]
    assert batch["params"] == [{"key": "algorithm", "value": "svc"},
                               {"key": "C", "value": "0.5"},
                               {"key": "kernel", "value": '"rbf"'}]
    assert batch["tags"] == [{"key": "mlcycle.trial.state", "value": "Complete"}]
    (end,) = fake.sent("runs/update")
    assert (end["run_id"], end["status"]) == ("run-1", "FINISHED")

    runs.end_trial("run-2", TrialState.FAILED, "accuracy", {}, None, "ValueError: bad C")
    failed = fake.sent("runs/log-batch")[1]
    assert "metrics" not in failed and "params" not in failed
    assert failed["tags"] == [{"key": "mlcycle.trial.state", "value": "Failed"},
                              {"key": "mlcycle.trial.error", "value": "ValueError: bad C"}]
    runs.end_trial("run-3", TrialState.PRUNED, "accuracy", {0: 0.25}, None)
    assert [u["status"] for u in fake.sent("runs/update")] == ["FINISHED", "FAILED", "KILLED"]

    runs.finish("accuracy", 0.8, {"trial": 4, "C": 0.5})
    best = fake.sent("runs/log-batch")[-1]
    assert best["run_id"] == "run-0"
    assert [(m["key"], m["value"]) for m in best["metrics"]] == [("best_accuracy", 0.8)]
    assert best["tags"] == [{"key": "mlcycle.best.trial", "value": "4"},
                            {"key": "mlcycle.best.C", "value": "0.5"}]
    assert fake.sent("runs/update")[-1] == {"run_uuid": "run-0", "run_id": "run-0",
                                            "status": "FINISHED",
                                            "end_time": fake.sent("runs/update")[-1]["end_time"]}


def test_a_second_worker_uses_the_first_one_s_parent_run_and_drops_its_own(
    fake: FakeMlflow
) -> None:
    store = MemoryStore()
    store.objects["study/parent-run.json"] = json.dumps({"runId": "theirs"}).encode()
    assert _open(fake, store).parent_run_id == "theirs"
    assert fake.requests == []

    class Racing(MemoryStore):
        def put_new(self, location: S3Location, data: bytes, content_type: str) -> bool:
            self.objects[location.key] = json.dumps({"runId": "winner"}).encode()
            return False

    assert _open(fake, Racing()).parent_run_id == "winner"
    assert fake.sent("runs/delete") == [{"run_id": "run-0"}]


def test_a_trial_s_run_is_found_by_its_number(fake: FakeMlflow) -> None:
    runs = SearchTracking(_client(fake), "7", "study-1", "run-0")
    assert runs.trial_run(5) is None
    fake.search_results = [{"info": {"run_id": "run-9"}, "data": {}}]
    assert runs.trial_run(5) == "run-9"
    assert fake.sent("runs/search")[-1] == {
        "experiment_ids": ["7"], "run_view_type": "ACTIVE_ONLY", "max_results": 1,
        "filter": "tags.`mlcycle.search.study` = 'study-1' and "
                  "tags.`mlcycle.search.role` = 'trial' and tags.`mlcycle.trial.number` = '5'"}


def test_a_large_batch_is_split_as_mlflow_s_client_splits_it(fake: FakeMlflow) -> None:
    _client(fake).log_batch("run-0", [Metric("m", 1.0, 1, step) for step in range(950)],
                            {f"p{i}": "1" for i in range(150)}, {"t": "v"})
    sizes = [(len(b.get("metrics", [])), len(b.get("params", [])), len(b.get("tags", [])))
             for b in fake.sent("runs/log-batch")]
    assert sizes == [(899, 100, 1), (51, 50, 0)]


def test_transient_answers_are_retried(fake: FakeMlflow) -> None:
    fake.script("runs/update", Answer(503, "busy"), Answer(503, "busy"))
    _client(fake).update_run("run-0", "FINISHED", 1)
    assert len(fake.sent("runs/update")) == 3


def test_lasting_transient_answers_are_transient(fake: FakeMlflow) -> None:
    fake.script("runs/update", *[Answer(503, "busy")] * 4)
    with pytest.raises(Transient) as raised:
        SearchTracking(_client(fake), "7", "s", "p").end_trial(
            "run-0", TrialState.COMPLETE, "accuracy", {}, 0.5)
    assert PASSWORD not in str(raised.value.message)


def test_a_refusal_is_invalid_input_naming_mlflow_s_code_and_no_credential(
    fake: FakeMlflow
) -> None:
    fake.script("runs/create", Answer(401, "You are not authenticated."))
    with pytest.raises(InvalidInput) as raised:
        SearchTracking(_client(fake), "7", "s", "p").start_trial(0, "svc", {}).result()
    assert raised.value.reason == "TrackingRejected"
    assert "UNAUTHENTICATED" in raised.value.message
    assert PASSWORD not in raised.value.message and "ns-user" not in raised.value.message
    fake.script("runs/log-batch", Answer.error("INVALID_PARAMETER_VALUE"))
    with pytest.raises(InvalidInput, match="INVALID_PARAMETER_VALUE"):
        SearchTracking(_client(fake), "7", "s", "p").end_trial(
            "run-0", TrialState.COMPLETE, "accuracy", {}, 0.5)


def test_an_unreachable_server_is_transient_without_credentials() -> None:
    closed = FakeMlflow()
    closed.close()
    client = MlflowRest(closed.url, Credentials("ns-user", PASSWORD),
                        retry=Retry(total=1, backoff_factor=0))
    with pytest.raises(Transient) as raised:
        SearchTracking(client, "7", "s", "p").trial_run(0)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    assert PASSWORD not in raised.value.message
    assert PASSWORD not in repr(Credentials("ns-user", PASSWORD))


def test_the_environment_names_the_server_and_the_user(
    fake: FakeMlflow, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", fake.url + "/")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "ns-user")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
    MlflowRest.from_environment().delete_run("run-0")
    assert fake.requests[0].authorization is not None
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
    MlflowRest.from_environment().delete_run("run-0")
    assert fake.requests[1].authorization is None
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "file:///tmp/mlruns")
    with pytest.raises(InvalidInput, match="MLFLOW_TRACKING_URI"):
        MlflowRest.from_environment()


def test_an_experiment_a_concurrent_creator_made_is_opened_once_readable(
    fake: FakeMlflow
) -> None:
    fake.script("experiments/get-by-name", Answer.error("RESOURCE_DOES_NOT_EXIST", 404))
    fake.script("experiments/create", Answer.error("RESOURCE_ALREADY_EXISTS"))
    fake.script("experiments/get-by-name", Answer(403, "Permission denied"),
                Answer(403, "Permission denied"))
    assert ensure_experiment(_client(fake), "ns/job", pause_s=0) == "7"
    assert [r.endpoint for r in fake.requests] == [
        "experiments/get-by-name", "experiments/create", "experiments/get-by-name",
        "experiments/get-by-name", "experiments/get-by-name"]


def test_a_missing_experiment_is_created(fake: FakeMlflow) -> None:
    fake.script("experiments/get-by-name", Answer.error("RESOURCE_DOES_NOT_EXIST", 404))
    fake.script("experiments/create", Answer.json({"experiment_id": "12"}))
    assert ensure_experiment(_client(fake), "ns/job", pause_s=0) == "12"
    assert fake.sent("experiments/create") == [{"name": "ns/job"}]


def test_a_deleted_experiment_is_refused(fake: FakeMlflow) -> None:
    fake.script("experiments/get-by-name", Answer.json({"experiment": {
        "experiment_id": "7", "name": "ns/job", "lifecycle_stage": "deleted"}}))
    with pytest.raises(InvalidInput, match="deleted experiment"):
        ensure_experiment(_client(fake), "ns/job", pause_s=0)


def test_a_lasting_refusal_is_reported_after_the_attempts(fake: FakeMlflow) -> None:
    fake.script("experiments/get-by-name", *[Answer(403, "Permission denied")] * 3)
    with pytest.raises(InvalidInput, match="PERMISSION_DENIED"):
        ensure_experiment(_client(fake), "ns/job", attempts=3, pause_s=0)
    assert len(fake.requests) == 3


def test_the_search_worker_imports_no_mlflow() -> None:
    """MLflow's package costs a worker seconds of its start; `train` alone needs it."""
    found = subprocess.run(
        [sys.executable, "-c", "import sys, mlcycle_trainer.__main__ as m; "
         "m._command('search'); "
         "print(sorted(n for n in sys.modules if n.split('.')[0] == 'mlflow'))"],
        capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"


def test_a_trial_s_requests_go_out_in_order_in_the_background_dated_when_queued(
    fake: FakeMlflow
) -> None:
    runs = SearchTracking(_client(fake), "7", "study-1", "run-p")
    fake.delay = 0.2
    started = int(time.time() * 1000)
    run = runs.start_trial(0, "svc", {})
    queued = int(time.time() * 1000)
    assert queued - started < 100  # the trial did not wait for MLflow
    runs.end_trial_later(run.result(), TrialState.PRUNED, "accuracy", {0: 0.5}, None, None,
                         {"algorithm": "svc"})
    ended = int(time.time() * 1000)
    runs.flush(10)
    assert [r.endpoint for r in fake.requests] == ["runs/create", "runs/log-batch",
                                                   "runs/update"]
    create, batch, update = (r.body for r in fake.requests)
    assert started <= create["start_time"] <= queued
    assert queued <= update["end_time"] <= ended < fake.requests[-1].answered_at * 1000
    assert batch["metrics"][0]["timestamp"] == update["end_time"]
    assert update["status"] == "KILLED"
    runs.close()


def test_a_failed_background_request_is_raised_by_the_next_call_or_the_flush(
    fake: FakeMlflow
) -> None:
    runs = SearchTracking(_client(fake), "7", "study-1", "run-p")
    fake.script("runs/log-batch", Answer.error("INVALID_PARAMETER_VALUE"))
    runs.end_trial_later("run-0", TrialState.COMPLETE, "accuracy", {}, 0.5)
    with pytest.raises(InvalidInput, match="INVALID_PARAMETER_VALUE"):
        runs.flush(10)
    fake.script("runs/log-batch", Answer.error("INVALID_PARAMETER_VALUE"))
    runs.end_trial_later("run-0", TrialState.COMPLETE, "accuracy", {}, 0.5)
    runs._queued[0].exception(timeout=10)
    with pytest.raises(InvalidInput):
        runs.start_trial(1, "svc", {})
    runs.close()


def test_a_flush_waits_a_bounded_time(fake: FakeMlflow) -> None:
    runs = SearchTracking(_client(fake), "7", "study-1", "run-p")
    fake.delay = 1.0
    runs.end_trial_later("run-0", TrialState.COMPLETE, "accuracy", {}, 0.5)
    started = time.monotonic()
    with pytest.raises(Transient, match="did not take 1 requests"):
        runs.flush(0.2)
    assert time.monotonic() - started < 0.8
    runs.flush_quietly(0.0)  # only logged
    runs.close()


def test_the_study_s_running_runs_are_listed_with_their_trial_and_worker(
    fake: FakeMlflow
) -> None:
    fake.search_results = [{"info": {"run_id": "run-3"}, "data": {"tags": [
        {"key": "mlcycle.trial.number", "value": "3"},
        {"key": "mlcycle.trial.worker", "value": "pod-0-abc"}]}}]
    runs = SearchTracking(_client(fake), "7", "study-1", "run-p")
    assert runs.open_trial_runs() == [("run-3", 3, "pod-0-abc")]
    assert fake.sent("runs/search")[0]["filter"] == (
        "tags.`mlcycle.search.study` = 'study-1' and tags.`mlcycle.search.role` = 'trial' "
        "and attributes.status = 'RUNNING'")
