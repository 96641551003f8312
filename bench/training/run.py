"""The training path's figures, on the local stack with the real operator, trainer, MLflow
and MinIO:

- latency from `kubectl apply` of a TrainingJob to its Job existing, p50/p99 over 20
  TrainingJobs created one a second (the operator busy with the earlier ones meanwhile);
- platform overhead: a TrainingJob's end-to-end time (created -> Succeeded seen) minus the
  trainer's own fit time, over TrainingJobs run one at a time, and where it goes: the
  moments watches of the TrainingJob, its Job and its Pod saw, between which the trainer's
  own phases (from its termination message) fall (bench.training.breakdown).

Run: `.venv/bin/python -m bench.training.run`. Results replace the `training` section of
docs/benchmarks.md; with `--overhead-only` it measures only the overhead and prints its
breakdown, writing nothing (to compare two trainers quickly).
"""

from __future__ import annotations

import argparse
import threading
import time
from functools import partial
from typing import Any

import urllib3
import yaml
from kubernetes import client, watch

from bench.sections import machine, percentile, replace_section
from bench.training.breakdown import RunTimeline, breakdown_table
from localkube import stack
from localkube.paths import REPO_ROOT
from localkube.readiness import api_client
from localkube.testing import create_namespace, delete_namespace, wait_for
from mlcycle_contract.constants import LABEL_TRAINING_JOB
from mlcycle_contract.results import TrainingResult

GROUP, VERSION = "mlcycle.dev", "v1alpha1"
LATENCY_RUNS = 20
OVERHEAD_RUNS = 3
MILESTONES = ("job_created", "pod_created", "pod_scheduled", "container_terminated",
              "succeeded")


def training_job(name: str, namespace: str) -> dict[str, Any]:
    """The iris example; its model named after the namespace too, as model names are a
    namespace's own (a second run on the same MLflow would find the first's refused)."""
    document: dict[str, Any] = yaml.safe_load(
        (REPO_ROOT / "examples/iris/trainingjob.yaml").read_text())
    document["metadata"]["name"] = name
    document["spec"]["registry"] = {"modelName": f"bench-{namespace}-{name}"}
    return document


def phase(objects: client.CustomObjectsApi, namespace: str, name: str) -> str | None:
    found = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, "trainingjobs", name)
    return (found.get("status") or {}).get("phase")


def wait_finished(objects: client.CustomObjectsApi, namespace: str, name: str,
                  phases: tuple[str, ...], timeout: float) -> None:
    def reached() -> bool:
        return phase(objects, namespace, name) in phases

    wait_for(f"{name} to reach {phases}", reached, timeout=timeout, interval=0.2)


def apply_to_job_latency(k8s: client.ApiClient, namespace: str) -> list[float]:
    objects = client.CustomObjectsApi(k8s)
    created: dict[str, float] = {}
    seen: dict[str, float] = {}
    stream = watch.Watch()

    def watch_jobs() -> None:
        for event in stream.stream(client.BatchV1Api(k8s).list_namespaced_job, namespace,
                                   timeout_seconds=600):
            owner = (event["object"].metadata.labels or {}).get("mlcycle.dev/training-job")
            if owner and owner not in seen:
                seen[owner] = time.monotonic()
            if len(seen) == LATENCY_RUNS:
                stream.stop()

    watcher = threading.Thread(target=watch_jobs, daemon=True)
    watcher.start()
    time.sleep(1)  # the watch is established
    for index in range(LATENCY_RUNS):
        name = f"latency-{index}"
        objects.create_namespaced_custom_object(GROUP, VERSION, namespace, "trainingjobs",
                                                training_job(name, namespace))
        created[name] = time.monotonic()
        time.sleep(1)
    watcher.join(timeout=300)
    for name in created:  # let them finish before the overhead runs
        wait_finished(objects, namespace, name, ("Succeeded", "Failed"), timeout=900)
    return [seen[name] - created[name] for name in created if name in seen]


class Milestones:
    """Watches of a namespace's TrainingJobs, Jobs and Pods: when each TrainingJob's run was
    first seen to reach each milestone (wall clock), and its trainer's termination message."""

    def __init__(self, k8s: client.ApiClient, namespace: str) -> None:
        self.seen: dict[str, dict[str, float]] = {}
        self.messages: dict[str, str] = {}
        self._streams = [watch.Watch() for _ in range(3)]
        self._stopped = False
        batch, core = client.BatchV1Api(k8s), client.CoreV1Api(k8s)
        objects = client.CustomObjectsApi(k8s)
        watches = [
            (self._streams[0], self._job, batch.list_namespaced_job, (namespace,)),
            (self._streams[1], self._pod, core.list_namespaced_pod, (namespace,)),
            (self._streams[2], self._training_job, objects.list_namespaced_custom_object,
             (GROUP, VERSION, namespace, "trainingjobs")),
        ]
        for stream, record, lister, arguments in watches:
            threading.Thread(target=self._follow, args=(stream, record, lister, arguments),
                             daemon=True).start()
        time.sleep(1)  # the watches are established

    def _follow(self, stream: watch.Watch, record: Any, lister: Any,
                arguments: tuple[str, ...]) -> None:
        try:
            for event in stream.stream(lister, *arguments, timeout_seconds=1800):
                record(event["object"], time.time())
        except urllib3.exceptions.ProtocolError:
            if not self._stopped:
                raise  # else: the namespace was deleted under the stopped watch

    def _mark(self, name: str | None, milestone: str, moment: float) -> None:
        if name:
            self.seen.setdefault(name, {}).setdefault(milestone, moment)

    def _job(self, job: client.V1Job, moment: float) -> None:
        owner = (job.metadata.labels or {}).get(LABEL_TRAINING_JOB)
        self._mark(owner, "job_created", moment)

    def _pod(self, pod: client.V1Pod, moment: float) -> None:
        owner = (pod.metadata.labels or {}).get(LABEL_TRAINING_JOB)
        self._mark(owner, "pod_created", moment)
        if pod.spec.node_name:
            self._mark(owner, "pod_scheduled", moment)
        for container in (pod.status.container_statuses or []) if pod.status else []:
            terminated = container.state.terminated if container.state else None
            if terminated is not None and owner:
                self._mark(owner, "container_terminated", moment)
                self.messages.setdefault(owner, terminated.message or "")

    def _training_job(self, body: dict[str, Any], moment: float) -> None:
        if (body.get("status") or {}).get("phase") == "Succeeded":
            self._mark(body["metadata"]["name"], "succeeded", moment)

    def all_seen(self, name: str) -> bool:
        """Every milestone of the run seen (each watch's events may trail another's)."""
        return set(self.seen.get(name, {})) == set(MILESTONES) and name in self.messages

    def timeline(self, name: str, created: float) -> RunTimeline:
        seen = self.seen[name]
        result = TrainingResult.model_validate_json(self.messages[name])
        assert result.timings is not None, f"{name}: the trainer reported no timings"
        return RunTimeline(created=created, job_created=seen["job_created"],
                           pod_created=seen["pod_created"], pod_scheduled=seen["pod_scheduled"],
                           container_terminated=seen["container_terminated"],
                           succeeded=seen["succeeded"],
                           trainer=result.timings)

    def stop(self) -> None:
        self._stopped = True
        for stream in self._streams:
            stream.stop()


def dataset_ready(objects: client.CustomObjectsApi, namespace: str, name: str) -> bool:
    found = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, "datasets", name)
    return bool((found.get("status") or {}).get("phase") == "Ready")


def overhead(k8s: client.ApiClient, namespace: str) -> list[tuple[RunTimeline, float]]:
    """(timeline, fit seconds) per TrainingJob, one at a time, once the namespace's iris
    Dataset is ingested (a run must not time the ingestion it waits for)."""
    objects = client.CustomObjectsApi(k8s)
    wait_for("the iris Dataset", partial(dataset_ready, objects, namespace, "iris"),
             timeout=300, interval=1)
    milestones = Milestones(k8s, namespace)
    results = []
    try:
        for index in range(OVERHEAD_RUNS):
            name = f"overhead-{index}"
            created = time.time()
            objects.create_namespaced_custom_object(GROUP, VERSION, namespace, "trainingjobs",
                                                    training_job(name, namespace))
            wait_for(f"{name} to succeed", partial(milestones.all_seen, name),
                     timeout=600, interval=0.05)
            status = objects.get_namespaced_custom_object(
                GROUP, VERSION, namespace, "trainingjobs", name)["status"]
            results.append((milestones.timeline(name, created),
                            float(status["metrics"]["fit_seconds"])))
    finally:
        milestones.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--overhead-only", action="store_true",
                        help="measure the overhead only and print its breakdown")
    overhead_only = parser.parse_args().overhead_only
    running = stack.up()
    k8s = api_client(running.cluster.kubeconfig)
    namespace = create_namespace(running.cluster.kubeconfig, prefix="bench")
    try:
        running.kubectl("apply", "-n", namespace, "-f",
                        str(REPO_ROOT / "examples/iris/dataset.yaml"))
        objects = client.CustomObjectsApi(k8s)
        wait_for("the iris Dataset", partial(dataset_ready, objects, namespace, "iris"),
                 timeout=300, interval=1)
        latencies = [] if overhead_only else apply_to_job_latency(k8s, namespace)
        runs = overhead(k8s, namespace)
    finally:
        delete_namespace(running.cluster.kubeconfig, namespace, timeout=600)
    if overhead_only:
        print("\n".join(breakdown_table([t for t, _ in runs], [f for _, f in runs])))
        return

    overheads = [timeline.end_to_end - fit for timeline, fit in runs]
    lines = [
        "## Training path (`python -m bench.training.run`)",
        "",
        f"Machine: {machine()}. The iris example TrainingJob (random forest, 100 trees, "
        "5-fold CV) on the local stack: real operator, trainer Jobs, MLflow and MinIO.",
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| create TrainingJob -> its Job exists ({len(latencies)} TrainingJobs, one a "
        f"second) | p50 {percentile(latencies, 0.5) * 1000:.0f} ms, p99 "
        f"{percentile(latencies, 0.99) * 1000:.0f} ms |",
        f"| end-to-end TrainingJob, created -> Succeeded ({len(runs)} runs, one at a time) | "
        f"median {percentile([t.end_to_end for t, _ in runs], 0.5):.1f} s |",
        f"| trainer's own fit time | median {percentile([f for _, f in runs], 0.5):.3f} s |",
        f"| platform overhead (end-to-end minus fit) | median "
        f"{percentile(overheads, 0.5):.1f} s, max {max(overheads):.1f} s |",
        "",
        "The overhead is everything around `fit`: scheduling the Pod, starting Python and "
        "importing scikit-learn, pandas and MLflow, reading the snapshot from S3, holdout and "
        "cross-validation scoring, latency measurement, logging the run and the model to "
        "MLflow, registering it, and the operator noticing the Job's completion.",
        "",
        f"Where it goes, stage by stage (median of the {len(runs)} runs each; medians do not "
        "add up exactly). Platform stages are the moments watches of the TrainingJob, its Job "
        "and its Pod saw; the trainer's phases are its own wall-clock laps, from its process's "
        "start (read from /proc) to its result, reported in its termination message. "
        "`scoring` is holdout, training-set and 5-fold cross-validation scores and the "
        "200-call latency measurement.",
        "",
        *breakdown_table([timeline for timeline, _ in runs], [fit for _, fit in runs]),
    ]
    replace_section("training", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
