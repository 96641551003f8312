"""Hyperparameter search and AutoML against the real MinIO, MLflow and cluster.

- The S3 journal under parallel writers: no record lost or duplicated.
- Two `search` workers as processes sharing one study: exactly maxTrials trials, one
  MLflow parent run and one child run per trial.
- examples/search applied: AutoML over several algorithms, status progress and
  leaderboard, one registered version, and no Pod left once the TrainingJob is deleted.
- A running search whose algorithms change starts a new study and deletes the earlier
  study's worker Job and Pods; the new study finishes with its own budget.
- A bad search refused naming the field, and a failure budget spent ending a worker with
  the trials' error.
- Reliability on the cluster: a worker Pod SIGKILLed mid-trial (that trial ends Failed, the
  search finishes), the failure budget spent (the search ends Failed naming the fits' error)
  and the operator SIGKILLed three times during a search (it finishes once: every trial
  once, one registered version).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import random
import re
import signal
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import pytest
from kubernetes import client
from mlflow.tracking import MlflowClient
from optuna.storages.journal import JournalStorage
from optuna.trial import TrialState as OptunaState

from localkube import stack
from localkube.paths import local_paths
from localkube.realnode import node
from localkube.stack import Stack
from localkube.testing import wait_for
from mlcycle_contract import environment as contract
from mlcycle_trainer.search_journal import S3JournalBackend
from mlcycle_trainer.search_tracking import TAG_TRIAL_WORKER
from mlcycle_trainer.storage import ObjectStore, S3Location
from tests.e2e.mlhelpers import (
    condition,
    events_for,
    jobs_with_label,
    kubectl_apply,
    load_example,
    read,
    wait_phase,
)
from tests.integration.test_trainer_services import (
    DATA_BUCKET,
    EXPERIMENT,
    Outcome,
    ingest,
    run_trainer,
)

pytestmark = pytest.mark.e2e
logger = logging.getLogger(__name__)

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


def _pods(k8s: client.ApiClient, namespace: str, name: str) -> list[Any]:
    return list(client.CoreV1Api(k8s).list_namespaced_pod(
        namespace, label_selector=f"mlcycle.dev/training-job={name}").items)


def test_automl_example_searches_tracks_and_registers_once(
    mlstack: Stack, k8s: client.ApiClient, ml_namespace: str
) -> None:
    model_name = f"wine-{ml_namespace}"
    for document in (load_example("search/dataset.yaml"), load_example(
            "search/trainingjob.yaml", {"spec": {"registry": {"modelName": model_name}}})):
        code, output = kubectl_apply(mlstack, ml_namespace, document)
        assert code == 0, output

    def searching() -> dict[str, Any] | None:
        status = read(k8s, "trainingjobs", ml_namespace, "wine-automl").get("status") or {}
        progress = status.get("progress") or {}
        return status if progress.get("completed", 0) + progress.get("pruned", 0) > 0 else None

    during = wait_for("trials in the status", searching, timeout=600)
    assert during["phase"] == "Running" and during["progress"]["total"] == 30
    assert len(jobs_with_label(k8s, ml_namespace, "mlcycle.dev/component=search")) == 1

    trained = wait_phase(k8s, "trainingjobs", ml_namespace, "wine-automl",
                         ("Succeeded", "Failed"), timeout=1200)
    status = trained["status"]
    assert status["phase"] == "Succeeded", status
    progress = status["progress"]
    assert progress["completed"] + progress["pruned"] + progress["failed"] == 30, progress
    assert (progress["trials"], progress["running"]) == ("30/30", 0)
    assert progress["completed"] >= 10, progress
    leaderboard, best = status["leaderboard"], status["bestTrial"]
    assert 1 <= len(leaderboard) <= 10 and leaderboard[0] == best
    values = [trial["value"] for trial in leaderboard]
    assert values == sorted(values, reverse=True)  # f1_macro: higher is better
    assert best["state"] == "Complete" and best["value"] > 0.85
    assert status["model"] == {"name": model_name, "version": 1,
                               "uri": f"models:/{model_name}/1"}
    assert condition(trained, "Ready")["status"] == "True"

    registry = MlflowClient(tracking_uri=mlstack.services.mlflow_url,
                            registry_uri=mlstack.services.mlflow_url)
    runs = registry.search_runs(
        [status["mlflow"]["experimentId"]],
        filter_string=f"tags.`{contract.TAG_SEARCH_STUDY}` = '{status['study']}'",
        max_results=200)
    parents = [r for r in runs if r.data.tags[contract.TAG_SEARCH_ROLE] == "parent"]
    trials = [r for r in runs if r.data.tags[contract.TAG_SEARCH_ROLE] == "trial"]
    assert len(parents) == 1 and len(trials) == 30
    assert {r.data.tags["mlflow.parentRunId"] for r in trials} == {parents[0].info.run_id}
    assert sorted(int(r.data.tags[contract.TAG_TRIAL_NUMBER]) for r in trials) == list(range(30))
    assert len({r.data.params["algorithm"] for r in trials}) == 3  # AutoML compared them all
    pruned = [r for r in trials if r.data.tags[contract.TAG_TRIAL_STATE] == "Pruned"]
    assert all(r.info.status == "KILLED" for r in pruned)
    # The best trial, trained once more on all training rows and registered once.
    versions = registry.search_model_versions(f"name = '{model_name}'")
    assert [v.version for v in versions] == ["1"]
    final = registry.get_run(str(versions[0].run_id))
    assert final.data.tags["mlcycle.algorithm"] == best["algorithm"]
    for name, value in json.loads(best["hyperparameters"]).items():
        assert str(value) == final.data.params[name], name
    assert registry.get_model_version_by_alias(model_name, "champion").version == "1"

    reasons = {event.reason for event in events_for(k8s, ml_namespace, "wine-automl")}
    assert {"Searching", "BestTrialImproved", "Succeeded"} <= reasons, reasons
    table = mlstack.kubectl("get", "trainingjobs", "-n", ml_namespace).stdout
    assert "30/30" in table, table

    mlstack.kubectl("delete", "trainingjob", "wine-automl", "-n", ml_namespace, "--wait=false")
    wait_for("no Pod of the search left", lambda: not _pods(k8s, ml_namespace, "wine-automl"),
             timeout=60)


def test_deleting_a_running_search_stops_its_workers(
    mlstack: Stack, k8s: client.ApiClient, ml_namespace: str
) -> None:
    for document in (load_example("search/dataset.yaml"), load_example(
            "search/trainingjob.yaml", {"metadata": {"name": "long"},
                                        "spec": {"search": {"maxTrials": 500}}})):
        code, output = kubectl_apply(mlstack, ml_namespace, document)
        assert code == 0, output
    wait_for("two running workers", lambda: len([
        p for p in _pods(k8s, ml_namespace, "long") if p.status.phase == "Running"]) == 2,
        timeout=600)
    mlstack.kubectl("delete", "trainingjob", "long", "-n", ml_namespace, "--wait=false")
    wait_for("no Pod of the search left", lambda: not _pods(k8s, ml_namespace, "long"),
             timeout=60)


def test_a_new_study_deletes_the_earlier_study_s_workers(
    mlstack: Stack, k8s: client.ApiClient, ml_namespace: str
) -> None:
    apply_search(mlstack, ml_namespace, "regen", {"maxTrials": 500})
    wait_for("a running worker", lambda: any(
        p.status.phase == "Running" for p in search_pods(k8s, ml_namespace, "regen")),
        timeout=300)
    earlier = read(k8s, "trainingjobs", ml_namespace, "regen")["status"]["study"]
    [workers] = [j.metadata.name for j in jobs_with_label(
        k8s, ml_namespace, "mlcycle.dev/training-job=regen,mlcycle.dev/component=search")]
    mlstack.kubectl("patch", "trainingjob", "regen", "-n", ml_namespace, "--type=merge", "-p",
                    json.dumps({"spec": {"search": {"algorithms": ["knn_classifier"],
                                                    "maxTrials": 4, "parallelism": 1}}}))

    def earlier_workers_gone() -> bool:
        jobs = jobs_with_label(k8s, ml_namespace, "mlcycle.dev/component=search")
        pods = [p for p in search_pods(k8s, ml_namespace, "regen")
                if p.metadata.labels.get("job-name") == workers]
        return workers not in [j.metadata.name for j in jobs] and not pods

    wait_for("the earlier study's workers deleted, their Pods gone", earlier_workers_gone,
             timeout=60)
    stopped = [e.message for e in events_for(k8s, ml_namespace, "regen")
               if e.reason == "EarlierStudyStopped"]
    assert stopped and all(earlier in m and workers in m for m in stopped), stopped
    done = wait_phase(k8s, "trainingjobs", ml_namespace, "regen", ("Succeeded", "Failed"),
                      timeout=300)
    status = done["status"]
    assert status["phase"] == "Succeeded", status
    assert status["study"] != earlier and status["progress"]["trials"] == "4/4"
    assert status["bestTrial"]["algorithm"] == "knn_classifier"


def test_a_cmaes_search_runs_in_the_trainer_image(
    mlstack: Stack, k8s: client.ApiClient, ml_namespace: str
) -> None:
    """Optuna's CMA-ES sampler needs the `cmaes` package: the image carries it, and the
    search over two numeric parameters runs every trial to completion."""
    space = {"C": {"type": "float", "low": 0.01, "high": 100.0, "log": True},
             "tol": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True}}
    search = load_example("search/trainingjob.yaml", {"metadata": {"name": "cmaes"}, "spec": {
        "algorithm": "logistic_regression", "validation": {"folds": 2},
        "registry": {"modelName": f"wine-cmaes-{ml_namespace}"},
        "search": {"space": {"logistic_regression": space}, "sampler": "cmaes",
                   "pruner": "none", "maxTrials": 6, "parallelism": 1}}})
    del search["spec"]["search"]["algorithms"]
    for document in (load_example("search/dataset.yaml"), search):
        code, output = kubectl_apply(mlstack, ml_namespace, document)
        assert code == 0, output
    trained = wait_phase(k8s, "trainingjobs", ml_namespace, "cmaes", ("Succeeded", "Failed"),
                         timeout=600)
    status = trained["status"]
    assert status["phase"] == "Succeeded", status
    assert status["progress"]["completed"] == 6, status["progress"]
    assert set(json.loads(status["bestTrial"]["hyperparameters"])) == {"C", "tol"}


@pytest.mark.parametrize(("search", "field", "reason"), [
    ({"space": {"knn_classifier": {"neighbours": {"type": "int", "low": 1, "high": 9}}}},
     "spec.search.space.knn_classifier.neighbours", "InvalidSearch"),
    ({"space": {"knn_classifier": {"weights": {"type": "categorical", "choices": [1, 2]}}}},
     "spec.search.space.knn_classifier.weights", "InvalidSearch"),
])
def test_a_bad_search_is_refused_naming_the_field_without_a_pod(
    mlstack: Stack, k8s: client.ApiClient, ml_namespace: str, search: dict[str, Any],
    field: str, reason: str
) -> None:
    document = load_example("search/trainingjob.yaml", {"spec": {"search": search}})
    code, output = kubectl_apply(mlstack, ml_namespace, document)
    assert code == 0, output
    refused = wait_phase(k8s, "trainingjobs", ml_namespace, "wine-automl", ("Failed",),
                         timeout=90)
    ready = condition(refused, "Ready")
    assert ready["reason"] == reason and ready["message"].startswith(field), ready
    assert not _pods(k8s, ml_namespace, "wine-automl")


def test_more_failed_trials_than_allowed_end_the_worker_naming_their_error(
    services_env: dict[str, str], tmp_path: Path
) -> None:
    dataset = ingest("iris", {"source": {"builtin": "iris"}, "target": "target"},
                     services_env, tmp_path)
    # A valid parameter value that no fit on these rows survives: a precomputed kernel
    # wants a square matrix of distances.
    spec = {"datasetRef": {"name": "iris"}, "algorithm": "svc", "validation": {"folds": 3},
            "search": {"space": {"svc": {"kernel": {"type": "categorical",
                                                    "choices": ["precomputed"]}}},
                       "maxTrials": 10, "maxFailedTrials": 2}}
    study = f"study-{uuid.uuid4().hex[:8]}"
    outcome = run_trainer(contract.COMMAND_SEARCH, "iris-failing", {
        contract.TRAINING_SPEC.name: json.dumps(spec),
        contract.DATASET_NAME.name: "iris",
        contract.DATASET_VERSION.name: dataset.message["version"],
        contract.DATASET_URI.name: dataset.message["snapshotURI"],
        contract.DATASET_TARGET.name: "target",
        contract.SEARCH_STUDY.name: study,
        contract.SEARCH_STUDY_URI.name: f"s3://{DATA_BUCKET}/test-searches/{study}",
    }, services_env, tmp_path)
    assert outcome.code == contract.EXIT_INVALID_INPUT, outcome.stderr[-2000:]
    error = outcome.message["error"]
    assert error["reason"] == "TrialsFailed" and error["field"] == "spec.search.maxFailedTrials"
    assert error["message"].startswith("3 trials failed, more than spec.search.maxFailedTrials "
                                       "(2): trials 0, 1, 2: ValueError: "), error["message"]
    assert "square" in error["message"]


# --- Reliability on the cluster -------------------------------------------------------------


# Trials of about a second (3 folds of a few hundred trees, no pruning): a test that must act
# while a trial runs (or while the search does) gets that long, whatever the platform's own
# per-trial cost, which is small and shrinking.
SLOW_TRIALS: dict[str, Any] = {
    "algorithm": "random_forest_classifier",
    "search": {"algorithms": None, "pruner": "none", "space": {"random_forest_classifier": {
        "n_estimators": {"type": "int", "low": 200, "high": 300}}}},
}


def apply_search(mlstack: Stack, namespace: str, name: str, search: dict[str, Any],
                 **spec: Any) -> str:
    """The example's Dataset and a search named `name` (3 folds); returns its model name."""
    model_name = f"{name}-{namespace}"
    training = load_example("search/trainingjob.yaml", {"metadata": {"name": name}, "spec": {
        "search": search, "registry": {"modelName": model_name},
        "validation": {"folds": 3}, **spec}})
    training["spec"]["search"] = {key: value for key, value in
                                  training["spec"]["search"].items() if value is not None}
    for document in (load_example("search/dataset.yaml"), training):
        code, output = kubectl_apply(mlstack, namespace, document)
        assert code == 0, output
    return model_name


def trial_runs(mlstack: Stack, experiment_id: str, study: str, *conditions: str) -> list[Any]:
    """The study's trial runs in MLflow (the workers write them; the operator only reads)."""
    found = " and ".join([f"tags.`{contract.TAG_SEARCH_STUDY}` = '{study}'",
                          f"tags.`{contract.TAG_SEARCH_ROLE}` = 'trial'", *conditions])
    return list(MlflowClient(tracking_uri=mlstack.services.mlflow_url).search_runs(
        [experiment_id], filter_string=found, max_results=500))


def studying(k8s: client.ApiClient, namespace: str, name: str) -> Callable[[], Any]:
    """A probe: the search's (experiment id, study) once its first trial is in the status."""
    def probe() -> tuple[str, str] | None:
        status = read(k8s, "trainingjobs", namespace, name).get("status") or {}
        experiment = (status.get("mlflow") or {}).get("experimentId")
        return (experiment, status["study"]) if experiment and status.get("study") else None
    return probe


def assert_finished_once(mlstack: Stack, status: dict[str, Any], trials: int) -> list[Any]:
    """Every trial number once, each run ended, the status counting them all."""
    progress = status["progress"]
    assert progress["completed"] + progress["pruned"] + progress["failed"] == trials, progress
    assert progress["running"] == 0, progress
    runs = trial_runs(mlstack, status["mlflow"]["experimentId"], status["study"])
    assert sorted(int(r.data.tags[contract.TAG_TRIAL_NUMBER]) for r in runs) == list(
        range(trials))
    assert {r.info.status for r in runs} <= {"FINISHED", "KILLED", "FAILED"}
    return runs


def search_pods(k8s: client.ApiClient, namespace: str, name: str) -> list[Any]:
    return [p for p in _pods(k8s, namespace, name)
            if p.metadata.labels.get("mlcycle.dev/component") == "search"]


def workers_report(k8s: client.ApiClient, namespace: str, name: str) -> str:
    """Each search Pod's phase, how its container ended and its last log lines: what a
    failed assertion on a search's outcome needs to say why."""
    core = client.CoreV1Api(k8s)
    lines = []
    for pod in search_pods(k8s, namespace, name):
        states = [s.state.terminated for s in pod.status.container_statuses or []]
        ended = next((f"exit {t.exit_code} {t.reason}: {t.message}" for t in states if t), "")
        try:
            log = core.read_namespaced_pod_log(pod.metadata.name, namespace, tail_lines=15)
        except client.ApiException as error:
            log = f"(no log: {error.status})"
        lines.append(f"{pod.metadata.name} {pod.status.phase} {ended}\n{log}")
    return "\n".join(lines)


def running_in_study(services_env: dict[str, str], namespace: str, name: str, uid: str,
                     study: str, number: int) -> bool:
    """Whether the study's journal holds trial `number` running: a worker's MLflow run may
    stay Running a moment after the study has its end (its requests go out in the
    background), and such a trial is not lost when its worker is."""
    os.environ.update(services_env)
    storage = JournalStorage(S3JournalBackend(ObjectStore(), S3Location(
        services_env["MLCYCLE_DATA_BUCKET"],
        f"datasets/{namespace}/searches/{name}-{uid}/{study}/journal")))
    trials = optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)
    return any(t.number == number and t.state == OptunaState.RUNNING for t in trials)


def test_a_killed_worker_s_trial_ends_failed_and_the_search_finishes(
    mlstack: Stack, k8s: client.ApiClient, ml_namespace: str, services_env: dict[str, str]
) -> None:
    model_name = apply_search(mlstack, ml_namespace, "killed",
                              {**SLOW_TRIALS["search"], "maxTrials": 12},
                              algorithm=SLOW_TRIALS["algorithm"])
    experiment, study = wait_for("the first trial in the status",
                                 studying(k8s, ml_namespace, "killed"), timeout=600)
    uid = read(k8s, "trainingjobs", ml_namespace, "killed")["metadata"]["uid"]
    chosen: dict[str, Any] = {}

    def choose() -> None:
        """A running worker: its Pod, the host pid of its container and its trials' host."""
        pod = next(p for p in search_pods(k8s, ml_namespace, "killed")
                   if p.status.phase == "Running")
        chosen.update(pod=pod, pid=node.container_pid(local_paths(), pod),
                      host=pod.spec.hostname or pod.metadata.name)  # Indexed Job: <job>-<index>

    def killed_mid_trial() -> Any:
        """Frozen (SIGSTOP), the worker cannot end a trial: SIGKILL it if its trial's run is
        open and the study holds the trial running, else let it go on and look again (at
        another worker, if this one has ended on its own, out of trials)."""
        try:
            os.kill(chosen["pid"], signal.SIGSTOP)
        except ProcessLookupError:
            choose()
            return None
        open_runs = [run for run in trial_runs(
            mlstack, experiment, study, "attributes.status = 'RUNNING'",
            f"tags.`{TAG_TRIAL_WORKER}` LIKE '{chosen['host']}-%'") if running_in_study(
            services_env, ml_namespace, "killed", uid, study,
            int(run.data.tags[contract.TAG_TRIAL_NUMBER]))]
        os.kill(chosen["pid"], signal.SIGKILL if open_runs else signal.SIGCONT)
        return open_runs[0] if open_runs else None

    choose()
    lost = wait_for("the worker inside a trial", killed_mid_trial, timeout=120)
    victim = chosen["pod"]
    worker = lost.data.tags[TAG_TRIAL_WORKER]
    logger.info("SIGKILLed worker %s (Pod %s) in trial %s", worker, victim.metadata.name,
                lost.data.tags[contract.TAG_TRIAL_NUMBER])

    done = wait_phase(k8s, "trainingjobs", ml_namespace, "killed", ("Succeeded", "Failed"),
                      timeout=900)
    status = done["status"]
    assert status["phase"] == "Succeeded", (
        f"{status.get('conditions')}\n{workers_report(k8s, ml_namespace, 'killed')}")
    runs = {r.info.run_id: r for r in assert_finished_once(mlstack, status, 12)}
    ended = runs[lost.info.run_id]
    assert ended.info.status == "FAILED" and ended.data.tags[contract.TAG_TRIAL_STATE] == "Failed"
    assert ended.data.tags[contract.TAG_TRIAL_ERROR] == (
        f"WorkerLost: worker {worker} stopped during the trial")
    assert status["progress"]["failed"] == 1, status["progress"]  # that one, no other
    phases = {p.metadata.name: p.status.phase for p in search_pods(k8s, ml_namespace, "killed")}
    # The killed Pod failed, and the Pod the Job put in its place finished its index.
    assert phases.pop(victim.metadata.name) == "Failed" and set(phases.values()) == {
        "Succeeded"}, phases
    registry = MlflowClient(tracking_uri=mlstack.services.mlflow_url,
                            registry_uri=mlstack.services.mlflow_url)
    assert [v.version for v in registry.search_model_versions(f"name = '{model_name}'")] == ["1"]


def test_more_failed_trials_than_allowed_fail_the_search_naming_the_error(
    mlstack: Stack, k8s: client.ApiClient, ml_namespace: str
) -> None:
    # A valid value no fit survives: a precomputed kernel wants a square matrix.
    apply_search(mlstack, ml_namespace, "failing", {
        "algorithms": None, "pruner": "none", "maxTrials": 10, "maxFailedTrials": 2,
        "space": {"svc": {"kernel": {"type": "categorical", "choices": ["precomputed"]}}}},
        algorithm="svc")
    failed = wait_phase(k8s, "trainingjobs", ml_namespace, "failing", ("Succeeded", "Failed"),
                        timeout=600)
    ready = condition(failed, "Ready")
    assert (failed["status"]["phase"], ready["reason"]) == ("Failed", "TrialsFailed"), ready
    # The trials failed when a worker counted them: at least 3 of the first, in any order.
    assert re.search(r"^\d+ trials failed, more than spec\.search\.maxFailedTrials \(2\): "
                     r"trials \d+(, \d+){2,}: ValueError: ", ready["message"]), ready["message"]
    assert "square" in ready["message"], ready["message"]  # the fits' own error
    assert failed["status"].get("model") is None
    assert not jobs_with_label(k8s, ml_namespace, "mlcycle.dev/component=train")


# --- The operator SIGKILLed and started again with the very settings it had ----------------

KILL_SEED = "MLCYCLE_KILL_SEED"  # set it to replay a run's kill moments


def operator_healthy(running: Stack) -> bool:
    """kopf's liveness endpoint answers: the operator has started and runs its handlers."""
    try:
        health, _ = stack.operator_urls(running)
        with urllib.request.urlopen(f"{health}/healthz", timeout=2) as answer:
            return bool(answer.status == 200)
    except (OSError, RuntimeError):  # not listening yet, or no operator (yet)
        return False


def test_operator_killed_three_times_during_a_search_finishes_it_once(
    mlstack: Stack, k8s: client.ApiClient, ml_namespace: str
) -> None:
    """Two kills at random trials of the search (drawn from a logged seed), the third as the
    best trial's training Job appears: the moment a restart could register twice."""
    seed = int(os.environ.get(KILL_SEED) or random.SystemRandom().randrange(2**32))
    moments = sorted(random.Random(seed).sample(range(1, 20), 2))
    logger.warning("%s=%d: SIGKILL the operator after trials %s finish and when the final "
                   "training Job appears", KILL_SEED, seed, moments)
    model_name = apply_search(mlstack, ml_namespace, "restarts", {"maxTrials": 20})
    experiment, study = wait_for("the first trial in the status",
                                 studying(k8s, ml_namespace, "restarts"), timeout=600)

    def finished(count: int) -> Callable[[], bool]:
        return lambda: len(trial_runs(mlstack, experiment, study,
                                      "attributes.status != 'RUNNING'")) >= count

    def training_job() -> bool:
        return bool(jobs_with_label(k8s, ml_namespace, "mlcycle.dev/component=train"))

    for what, reached in [*((f"{m} trials finished", finished(m)) for m in moments),
                          ("the final training Job", training_job)]:
        wait_for(what, reached, timeout=600)
        wait_for("the operator's liveness", lambda: operator_healthy(mlstack), timeout=120)
        stack.kill_operator(mlstack)
        logger.warning("SIGKILLed the operator at %s; it runs again", what)

    done = wait_phase(k8s, "trainingjobs", ml_namespace, "restarts", ("Succeeded", "Failed"),
                      timeout=900)
    status = done["status"]
    assert status["phase"] == "Succeeded", status
    assert_finished_once(mlstack, status, 20)
    assert len(jobs_with_label(k8s, ml_namespace, "mlcycle.dev/component=search")) == 1
    assert len(jobs_with_label(k8s, ml_namespace, "mlcycle.dev/component=train")) == 1
    registry = MlflowClient(tracking_uri=mlstack.services.mlflow_url,
                            registry_uri=mlstack.services.mlflow_url)
    assert [v.version for v in registry.search_model_versions(f"name = '{model_name}'")] == ["1"]
    assert status["model"]["version"] == 1
