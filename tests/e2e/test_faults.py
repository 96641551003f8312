"""The fault-injection suite: the operator SIGKILLed at its write boundaries (`make test-faults`).

Each test applies the same resources in two namespaces at once: a control, which no fault
touches, and one where kill points are armed (mlcycle.faults). The operator, the chart's Pod
of the stack, SIGKILLs itself at each armed point in turn (the first time it passes it), the
kubelet restarts its container, and the next point waits for the next pass. When both
namespaces have settled, the faulted one must hold what the control holds:

- the same Jobs (one per resource, generation and trigger: none twice, none missing);
- the same status: phases, condition reasons, versions, runs, trial counts;
- exactly the registered model versions the control registered, and the alias on the same
  version;
- serving Pods that all run the version the alias names;
- the same Events (by object and reason) but for passing states' (Ingesting, Training,
  RollingOut...), which a run whose operator was down meanwhile never saw;
- no orphaned Pod: each is owned by a Job or ReplicaSet that exists.

Every armed point must have fired: a point the flow never reaches fails the test rather
than passing it untested.

Service faults: MinIO down as a Dataset is ingested, MLflow down from the trainer's start (its run,
model and registration meet the outage),
the apiserver down mid-rollout (every watch cut). Each heals within 60 s of the service's
return, with the Jobs, versions and alias of a fault-free run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from kubernetes import client
from mlflow.tracking import MlflowClient

from localkube import chart_services, cluster, services, stack, testing
from localkube.stack import Stack
from localkube.testing import wait_for
from mlcycle import faults
from mlcycle.reconcile.common import PROGRESS_REASONS
from mlcycle_contract import constants
from tests.e2e.mlhelpers import (
    GROUP,
    VERSION,
    condition,
    kubectl_apply,
    load_example,
    read,
)
from tests.e2e.test_search import SLOW_TRIALS

logger = logging.getLogger(__name__)

pytestmark = pytest.mark.faults

KINDS = {"datasets": "Dataset", "trainingjobs": "TrainingJob",
         "modeldeployments": "ModelDeployment"}

# Points every run of the flow passes, whatever moments the kills before them hit (a write
# that a restart can make needless, such as the Ingesting status of a Dataset whose Job
# finished meanwhile, is not one of them). "After creating a Job, before writing status" is
# Job/<component>/created; "the trainer finished, before registration is recorded" is
# TrainingJob/status/Succeeded; "the alias moved, before the Deployment is updated" is
# TrainingJob/status/Succeeded/written (the trainer moved it; the operator is about to wake
# the ModelDeployment).
IRIS_POINTS = [
    "Secret/created",
    "Job/ingest/created",
    "Dataset/event/Ingested",
    "Dataset/status/Ready",
    "Dataset/status/Ready/written",
    "Job/train/created",
    "TrainingJob/status/Running",
    "TrainingJob/status/Running/written",
    "TrainingJob/event/Succeeded",
    "TrainingJob/status/Succeeded",
    "TrainingJob/status/Succeeded/written",
    "Deployment/applied",
    "Service/applied",
    "ModelDeployment/event/Serving",
    "ModelDeployment/status/Available",
    "ModelDeployment/status/Available/written",
]
# Version 2 rolls out over version 1: the new training run, then the rollout itself.
ROLLOUT_POINTS = [
    "Job/train/created",
    "TrainingJob/status/Succeeded/written",
    "Deployment/applied",
    "ModelDeployment/event/RollingOut",
    "ModelDeployment/status/Progressing/written",
    "ModelDeployment/status/Available/written",
]
# Between trials: a progress tick's status (every 5 s while trials run).
SEARCH_POINTS = [
    "Job/search/created",
    "TrainingJob/status/Running/written",
    "TrainingJob/status/Running/written@2",
    "TrainingJob/event/BestTrialImproved",
    "Job/train/created",
    "TrainingJob/status/Succeeded",
    "TrainingJob/status/Succeeded/written",
]


@dataclass
class Supervisor:
    """Starts a local operator process again whenever it is found dead, as the kubelet
    restarts a crashed container (at once here: no back-off to wait out)."""

    mlstack: Stack
    restarts: int = 0
    stopping: threading.Event = field(default_factory=threading.Event)

    def watch(self) -> None:
        while not self.stopping.wait(0.1):
            if stack.operator_pid(self.mlstack.paths) is None:
                pid = stack.start_operator(self.mlstack)
                self.restarts += 1
                logger.warning("The operator was dead: started it again as pid %d", pid)


@contextmanager
def supervised_operator(mlstack: Stack) -> Iterator[Callable[[], int]]:
    """The stack's operator, started again whenever it dies; yields how many times it has
    been since. The chart's Pod is the kubelet's to restart (after at most 1 s: the real
    node's crashLoopBackOff). A local process (LOCALKUBE_OPERATOR=process) is replaced by a
    fresh one, which reads the kill-points file, restarted by a Supervisor. Disarmed after."""
    try:
        if stack.operator_from_chart():
            before = chart_services.operator_restarts(mlstack.paths)
            yield lambda: chart_services.operator_restarts(mlstack.paths) - before
            return
        with stack.operator_process(mlstack):
            supervisor = Supervisor(mlstack)
            thread = threading.Thread(target=supervisor.watch, daemon=True)
            thread.start()
            try:
                yield lambda: supervisor.restarts
            finally:
                supervisor.stopping.set()
                thread.join()
    finally:
        disarm(mlstack)


def arm(mlstack: Stack, namespace: str, points: list[str]) -> None:
    armed = mlstack.paths.kill_points
    faults.fired_file(armed).unlink(missing_ok=True)
    armed.write_text(faults.KillPlan(namespace=namespace, points=points).model_dump_json())


def disarm(mlstack: Stack) -> None:
    mlstack.paths.kill_points.unlink(missing_ok=True)


def fired(mlstack: Stack) -> list[str]:
    return sorted(faults.fired_points(mlstack.paths.kill_points))


def assert_all_fired(mlstack: Stack, points: list[str]) -> None:
    """Each armed point fired: one the flow never reached would be a fault untested."""
    try:
        wait_for("every kill point to fire", lambda: fired(mlstack) == sorted(points),
                 timeout=60)
    except TimeoutError:
        assert fired(mlstack) == sorted(points)


@pytest.fixture
def two_namespaces(mlstack: Stack) -> Iterator[tuple[str, str]]:
    """(control, faulted)"""
    kubeconfig = mlstack.cluster.kubeconfig
    control = testing.create_namespace(kubeconfig, prefix="control")
    faulted = testing.create_namespace(kubeconfig, prefix="faulted")
    yield control, faulted
    for namespace in (control, faulted):
        testing.delete_namespace(kubeconfig, namespace, until_gone=False)


def model_name(namespace: str) -> str:
    return f"iris-{namespace}"


def apply_iris(mlstack: Stack, namespace: str) -> None:
    """The iris flow, its training slowed (400 trees) so that it outlasts the operator's
    restart after the kill before its Running status: else that status is never written,
    and TrainingJob/status/Running/written never passed."""
    name = model_name(namespace)
    for document in (
        load_example("iris/dataset.yaml"),
        load_example("iris/trainingjob.yaml", {"spec": {
            "registry": {"modelName": name},
            "hyperparameters": {"n_estimators": 400, "random_state": 0}}}),
        load_example("iris/modeldeployment.yaml", {"spec": {"model": {"name": name}}}),
    ):
        code, output = kubectl_apply(mlstack, namespace, document)
        assert code == 0, output


def serving(k8s: client.ApiClient, namespace: str, version: int) -> Callable[[], bool]:
    def probe() -> bool:
        found = read(k8s, "modeldeployments", namespace, "iris")
        status = found.get("status") or {}
        pods = live_pods(k8s, namespace, f"{constants.LABEL_MODEL_DEPLOYMENT}=iris")
        return (status.get("servedVersion") == version and status.get("readyReplicas") == 2
                and condition(found, "Ready").get("status") == "True" and len(pods) == 2)
    return probe


def live_pods(k8s: client.ApiClient, namespace: str, selector: str = "") -> list[Any]:
    pods = client.CoreV1Api(k8s).list_namespaced_pod(namespace, label_selector=selector).items
    return [p for p in pods if p.metadata.deletion_timestamp is None]


# --- What both namespaces must hold alike ---------------------------------------------------

def status_view(resource: dict[str, Any]) -> dict[str, Any]:
    """What a run's status says, without what differs between two good runs (times, names,
    namespaces, ids, scores)."""
    status = resource.get("status") or {}
    model = status.get("model") or {}
    progress = status.get("progress") or {}
    return {
        "phase": status.get("phase"),
        "conditions": sorted((c["type"], c["status"], c["reason"])
                             for c in status.get("conditions") or []),
        "model_version": model.get("version"),
        "served_version": status.get("servedVersion"),
        "ready_replicas": status.get("readyReplicas"),
        "dataset_version": status.get("datasetVersion") or status.get("version"),
        "runs": [(r.get("number"), r.get("trigger"), r.get("phase"))
                 for r in status.get("runs") or []],
        "finished_trials": (progress.get("completed", 0) + progress.get("pruned", 0)
                            + progress.get("failed", 0)) if progress else None,
        "rollouts": [(h.get("version"), h.get("outcome")) for h in status.get("history") or []],
    }


def statuses(k8s: client.ApiClient, namespace: str) -> dict[str, Any]:
    custom = client.CustomObjectsApi(k8s)
    return {f"{kind}/{item['metadata']['name']}": status_view(item)
            for plural, kind in KINDS.items()
            for item in custom.list_namespaced_custom_object(
                GROUP, VERSION, namespace, plural)["items"]}


def jobs(k8s: client.ApiClient, namespace: str) -> Counter[tuple[str, str]]:
    """(component, owner) of every Job, counted: one per generation and trigger has a name
    of its own, so a twin would count 2 where the control counts 1."""
    found = client.BatchV1Api(k8s).list_namespaced_job(namespace).items
    return Counter((job.metadata.labels.get(constants.LABEL_COMPONENT, ""),
                    next(o.name for o in job.metadata.owner_references)) for job in found)


# A state the operator never saw has no Event, in either namespace: a restart that takes
# longer than an ingestion, a rollout or the wait for a model skips its Ingesting, RollingOut
# or ModelNotFound. What every run reports are the outcomes.
PASSING_REASONS = PROGRESS_REASONS | {"ModelNotFound"}


def events(k8s: client.ApiClient, namespace: str) -> set[tuple[str, str, str]]:
    """(kind, name, reason) of the operator's Events, but for states that pass."""
    found = client.CoreV1Api(k8s).list_namespaced_event(namespace).items
    return {(e.involved_object.kind, e.involved_object.name, e.reason) for e in found
            if e.source and e.source.component == "mlcycle-operator"
            and e.reason not in PASSING_REASONS}


def registered(mlstack: Stack, name: str) -> tuple[list[str], str | None]:
    """The model's versions, and the version its `champion` alias names."""
    registry = MlflowClient(tracking_uri=mlstack.services.mlflow_url,
                            registry_uri=mlstack.services.mlflow_url)
    versions = sorted(v.version for v in registry.search_model_versions(f"name = '{name}'"))
    aliases = registry.get_registered_model(name).aliases
    return versions, aliases.get("champion")


def orphans(k8s: client.ApiClient, namespace: str) -> list[str]:
    """Pods whose controlling Job or ReplicaSet no longer exists (or that have none)."""
    batch, apps = client.BatchV1Api(k8s), client.AppsV1Api(k8s)
    owners = {("Job", j.metadata.uid) for j in batch.list_namespaced_job(namespace).items}
    owners |= {("ReplicaSet", r.metadata.uid)
               for r in apps.list_namespaced_replica_set(namespace).items}
    return [pod.metadata.name for pod in live_pods(k8s, namespace)
            if not any((o.kind, o.uid) in owners for o in pod.metadata.owner_references or [])]


def assert_alike(mlstack: Stack, k8s: client.ApiClient, control: str, faulted: str,
                 models: bool = True) -> None:
    assert statuses(k8s, faulted) == statuses(k8s, control)
    assert jobs(k8s, faulted) == jobs(k8s, control)
    assert events(k8s, faulted) == events(k8s, control)
    assert orphans(k8s, faulted) == [] and orphans(k8s, control) == []
    if models:
        assert registered(mlstack, model_name(faulted)) == registered(mlstack,
                                                                      model_name(control))


def served_versions(k8s: client.ApiClient, namespace: str) -> set[str]:
    pods = live_pods(k8s, namespace, f"{constants.LABEL_MODEL_DEPLOYMENT}=iris")
    return {p.metadata.labels[constants.LABEL_MODEL_VERSION] for p in pods}


# --- The flows ------------------------------------------------------------------------------

def test_the_iris_flow_and_a_rollout_survive_a_kill_at_every_write(
    mlstack: Stack, k8s: client.ApiClient, two_namespaces: tuple[str, str]
) -> None:
    control, faulted = two_namespaces
    with supervised_operator(mlstack) as restarts:
        arm(mlstack, faulted, IRIS_POINTS)
        for namespace in two_namespaces:
            apply_iris(mlstack, namespace)
        for namespace in two_namespaces:
            wait_for(f"{namespace} to serve version 1", serving(k8s, namespace, 1), timeout=600)
        assert_all_fired(mlstack, IRIS_POINTS)
        wait_for("a restart after each kill", lambda: restarts() >= len(IRIS_POINTS),
                 timeout=30)
        assert_alike(mlstack, k8s, control, faulted)
        assert registered(mlstack, model_name(faulted)) == (["1"], "1")
        assert served_versions(k8s, faulted) == {"1"}

        arm(mlstack, faulted, ROLLOUT_POINTS)
        for namespace in two_namespaces:
            code, output = kubectl_apply(mlstack, namespace, load_example(
                "iris/trainingjob.yaml", {"spec": {"registry": {"modelName": model_name(namespace)},
                                                   "hyperparameters": {"n_estimators": 60}}}))
            assert code == 0, output
        for namespace in two_namespaces:
            wait_for(f"{namespace} to serve version 2", serving(k8s, namespace, 2), timeout=600)
        assert_all_fired(mlstack, ROLLOUT_POINTS)
        assert_alike(mlstack, k8s, control, faulted)
        assert registered(mlstack, model_name(faulted)) == (["1", "2"], "2")
        assert served_versions(k8s, faulted) == {"2"}


def apply_search(mlstack: Stack, namespace: str) -> None:
    """Slow trials: the search still runs when the operator, killed twice, comes back."""
    training = load_example("search/trainingjob.yaml", {"metadata": {"name": "search"}, "spec": {
        "registry": {"modelName": model_name(namespace)}, "validation": {"folds": 3},
        "algorithm": SLOW_TRIALS["algorithm"],
        "search": {**SLOW_TRIALS["search"], "maxTrials": 12, "parallelism": 1}}})
    training["spec"]["search"] = {key: value for key, value in
                                  training["spec"]["search"].items() if value is not None}
    for document in (load_example("search/dataset.yaml"), training):
        code, output = kubectl_apply(mlstack, namespace, document)
        assert code == 0, output


def test_a_search_survives_a_kill_between_trials_and_around_its_final_training(
    mlstack: Stack, k8s: client.ApiClient, two_namespaces: tuple[str, str]
) -> None:
    control, faulted = two_namespaces
    with supervised_operator(mlstack):
        arm(mlstack, faulted, SEARCH_POINTS)
        for namespace in two_namespaces:
            apply_search(mlstack, namespace)

        def ended(namespace: str) -> Callable[[], bool]:
            return lambda: (read(k8s, "trainingjobs", namespace, "search").get("status")
                            or {}).get("phase") in ("Succeeded", "Failed")

        for namespace in two_namespaces:
            wait_for(f"the search in {namespace} to end", ended(namespace), timeout=900)
        assert_all_fired(mlstack, SEARCH_POINTS)
        assert_alike(mlstack, k8s, control, faulted)
        assert registered(mlstack, model_name(faulted))[0] == ["1"]


# --- Service faults -------------------------------------------------------------------------

HEAL_SECONDS = 60


def healed(what: str, probe: Callable[[], Any], back: float) -> float:
    """Seconds from the service's return until `probe` holds; fails past HEAL_SECONDS."""
    wait_for(what, probe, timeout=HEAL_SECONDS, interval=0.5)
    seconds = time.monotonic() - back
    logger.warning("%s %.1f s after the service came back", what, seconds)
    return seconds


def phase_is(k8s: client.ApiClient, plural: str, namespace: str, name: str,
             phase: str) -> Callable[[], bool]:
    return lambda: (read(k8s, plural, namespace, name).get("status") or {}).get("phase") == phase


def test_the_iris_flow_heals_from_an_outage_of_each_service(
    mlstack: Stack, k8s: client.ApiClient, ml_namespace: str
) -> None:
    namespace, paths = ml_namespace, mlstack.paths
    name = model_name(namespace)
    dataset, training, deployment = (
        load_example("iris/dataset.yaml"),
        load_example("iris/trainingjob.yaml", {"spec": {"registry": {"modelName": name}}}),
        load_example("iris/modeldeployment.yaml", {"spec": {"model": {"name": name}}}))

    code, output = kubectl_apply(mlstack, namespace, dataset)
    assert code == 0, output
    services.outage(paths, "minio", 30)  # the namespace's S3 user, then the snapshot
    healed("the Dataset ingested", phase_is(k8s, "datasets", namespace, "iris", "Ready"),
           time.monotonic())

    for document in (training, deployment):
        code, output = kubectl_apply(mlstack, namespace, document)
        assert code == 0, output
    wait_for("the trainer running", lambda: any(
        pod.status.phase == "Running" for pod in
        live_pods(k8s, namespace, f"{constants.LABEL_TRAINING_JOB}=iris-rf")),
        timeout=300, interval=0.2)
    services.outage(paths, "mlflow", 30)  # its run, metrics, model and registration meet it
    healed("the TrainingJob succeeded",
           phase_is(k8s, "trainingjobs", namespace, "iris-rf", "Succeeded"), time.monotonic())
    wait_for("version 1 served", serving(k8s, namespace, 1), timeout=300)

    retrained = load_example("iris/trainingjob.yaml", {"spec": {
        "registry": {"modelName": name}, "hyperparameters": {"n_estimators": 60}}})
    code, output = kubectl_apply(mlstack, namespace, retrained)
    assert code == 0, output

    def rolling_out_2() -> bool:
        status = read(k8s, "modeldeployments", namespace, "iris").get("status") or {}
        history = status.get("history") or [{}]
        return history[0].get("version") == 2 and history[0].get("completedAt") is None

    wait_for("the rollout of version 2", rolling_out_2, timeout=300, interval=0.2)
    cluster.apiserver_outage(10)
    back = time.monotonic()
    healed("version 2 served", serving(k8s, namespace, 2), back)
    code, output = kubectl_apply(mlstack, namespace, load_example(
        "iris/dataset.yaml", {"metadata": {"name": "after"}}))
    assert code == 0, output
    healed("a Dataset created after the cut watched and ingested",
           phase_is(k8s, "datasets", namespace, "after", "Ready"), time.monotonic())

    assert jobs(k8s, namespace) == Counter({("ingest", "iris"): 1, ("train", "iris-rf"): 2,
                                            ("ingest", "after"): 1})
    assert registered(mlstack, name) == (["1", "2"], "2")
    assert served_versions(k8s, namespace) == {"2"}
    assert orphans(k8s, namespace) == []
