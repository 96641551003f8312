"""Hyperparameter search and AutoML against the real MinIO, MLflow and cluster.

- The S3 journal under parallel writers: no record lost or duplicated.
- Two `search` workers as processes sharing one study: exactly maxTrials trials, one
  MLflow parent run and one child run per trial.
- examples/search applied: AutoML over several algorithms, status progress and
  leaderboard, one registered version, and no Pod left once the TrainingJob is deleted.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from mlcycle_contract import environment as contract
from mlcycle_trainer.search_journal import S3JournalBackend
from mlcycle_trainer.storage import ObjectStore, S3Location
from tests.integration.test_trainer_services import (
    DATA_BUCKET,
    EXPERIMENT,
    Outcome,
    ingest,
    run_trainer,
)

pytestmark = pytest.mark.e2e

RECORDS_PER_WRITER = 60


def _append(services_env: dict[str, str], prefix: str, writer: int,
            start: multiprocessing.synchronize.Barrier) -> None:
    os.environ.update(services_env)
    backend = S3JournalBackend(ObjectStore(), S3Location(DATA_BUCKET, prefix))
    start.wait()  # both writers ready: they append at the same time
    for i in range(RECORDS_PER_WRITER):
        backend.append_logs([{"writer": writer, "i": i}])


def test_parallel_appends_lose_and_duplicate_nothing(services_env: dict[str, str]) -> None:
    prefix = f"test-journal/{uuid.uuid4().hex}"
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Barrier(2)
    writers = [spawn.Process(target=_append, args=(dict(services_env), prefix, writer, start))
               for writer in (0, 1)]
    for process in writers:
        process.start()
    for process in writers:
        process.join(timeout=300)
        assert process.exitcode == 0
    os.environ.update(services_env)
    records = list(S3JournalBackend(ObjectStore(), S3Location(DATA_BUCKET, prefix)).read_logs(0))
    assert len(records) == 2 * RECORDS_PER_WRITER
    for writer in (0, 1):
        # Every record once, and each writer's in the order it appended them.
        assert [r["i"] for r in records if r["writer"] == writer] == list(range(RECORDS_PER_WRITER))
    later = S3JournalBackend(ObjectStore(), S3Location(DATA_BUCKET, prefix))
    assert list(later.read_logs(0))[7:] == list(later.read_logs(7))


SEARCH_SPEC: dict[str, Any] = {
    "datasetRef": {"name": "iris"},
    "validation": {"folds": 3},
    "search": {"algorithms": ["logistic_regression", "decision_tree_classifier", "gaussian_nb"],
               "maxTrials": 12, "parallelism": 2, "pruner": "median", "seed": 3},
}


def _search_worker(index: int, study: str, dataset: Outcome, services_env: dict[str, str],
                   workdir: Path) -> Outcome:
    return run_trainer(contract.COMMAND_SEARCH, "iris-search", {
        contract.TRAINING_SPEC.name: json.dumps(SEARCH_SPEC),
        contract.DATASET_NAME.name: "iris",
        contract.DATASET_VERSION.name: dataset.message["version"],
        contract.DATASET_URI.name: dataset.message["snapshotURI"],
        contract.DATASET_TARGET.name: "target",
        contract.SEARCH_STUDY.name: study,
        contract.SEARCH_STUDY_URI.name: f"s3://{DATA_BUCKET}/test-searches/{study}",
        contract.JOB_COMPLETION_INDEX.name: str(index),
    }, services_env, workdir)


def test_two_workers_share_one_study(services_env: dict[str, str], tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    dataset = ingest("iris", {"source": {"builtin": "iris"}, "target": "target"},
                     services_env, tmp_path)
    assert dataset.code == 0, dataset.message
    study = f"study-{uuid.uuid4().hex[:8]}"
    with ThreadPoolExecutor(2) as pool:
        outcomes = list(pool.map(
            lambda i: _search_worker(i, study, dataset, services_env, tmp_path), (0, 1)))
    for outcome in outcomes:
        assert outcome.code == 0, (outcome.message, outcome.stderr[-3000:])
        assert outcome.message["stoppedBy"] == "maxTrials"
    assert sum(o.message["trials"] for o in outcomes) == 12
    assert all(o.message["trials"] > 0 for o in outcomes), "one worker ran every trial"

    client = MlflowClient(tracking_uri=services_env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{contract.TAG_SEARCH_STUDY}` = '{study}'", max_results=100)
    parents = [r for r in runs if r.data.tags[contract.TAG_SEARCH_ROLE] == "parent"]
    trials = [r for r in runs if r.data.tags[contract.TAG_SEARCH_ROLE] == "trial"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert len(trials) == 12
    assert {r.data.tags["mlflow.parentRunId"] for r in trials} == {parents[0].info.run_id}
    numbers = sorted(int(r.data.tags[contract.TAG_TRIAL_NUMBER]) for r in trials)
    assert numbers == list(range(12))
    states = {r.data.tags[contract.TAG_TRIAL_STATE] for r in trials}
    assert states <= {"Complete", "Pruned"}, states
    complete = [r for r in trials if r.data.tags[contract.TAG_TRIAL_STATE] == "Complete"]
    assert all("accuracy" in r.data.metrics for r in complete)
    assert len({r.data.params["algorithm"] for r in trials}) >= 2
