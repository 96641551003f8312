"""The training path's figures, on the local stack with the real operator, trainer, MLflow
and MinIO:

- latency from `kubectl apply` of a TrainingJob to its Job existing, p50/p99 over 20
  TrainingJobs created one a second (the operator busy with the earlier ones meanwhile);
- platform overhead: a TrainingJob's end-to-end time (created -> Succeeded seen) minus the
  trainer's own fit time, over TrainingJobs run one at a time.

Run: `.venv/bin/python -m bench.training.run`. Results replace the `training` section of
docs/benchmarks.md.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import yaml
from kubernetes import client, watch

from bench.sections import machine, percentile, replace_section
from localkube import stack
from localkube.paths import REPO_ROOT
from localkube.readiness import api_client
from localkube.testing import create_namespace, delete_namespace, wait_for

GROUP, VERSION = "mlcycle.dev", "v1alpha1"
LATENCY_RUNS = 20
OVERHEAD_RUNS = 3


def training_job(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(
        (REPO_ROOT / "examples/iris/trainingjob.yaml").read_text())
    document["metadata"]["name"] = name
    document["spec"]["registry"] = {"modelName": f"bench-{name}"}
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
                                                training_job(name))
        created[name] = time.monotonic()
        time.sleep(1)
    watcher.join(timeout=300)
    for name in created:  # let them finish before the overhead runs
        wait_finished(objects, namespace, name, ("Succeeded", "Failed"), timeout=900)
    return [seen[name] - created[name] for name in created if name in seen]


def overhead(k8s: client.ApiClient, namespace: str) -> list[tuple[float, float]]:
    """(end-to-end seconds, fit seconds) per TrainingJob, one at a time."""
    objects = client.CustomObjectsApi(k8s)
    results = []
    for index in range(OVERHEAD_RUNS):
        name = f"overhead-{index}"
        started = time.monotonic()
        objects.create_namespaced_custom_object(GROUP, VERSION, namespace, "trainingjobs",
                                                training_job(name))
        wait_finished(objects, namespace, name, ("Succeeded",), timeout=600)
        elapsed = time.monotonic() - started
        status = objects.get_namespaced_custom_object(
            GROUP, VERSION, namespace, "trainingjobs", name)["status"]
        results.append((elapsed, float(status["metrics"]["fit_seconds"])))
    return results


def main() -> None:
    running = stack.up()
    k8s = api_client(running.cluster.kubeconfig)
    namespace = create_namespace(running.cluster.kubeconfig, prefix="bench")
    try:
        running.kubectl("apply", "-n", namespace, "-f",
                        str(REPO_ROOT / "examples/iris/dataset.yaml"))
        objects = client.CustomObjectsApi(k8s)
        wait_for("the iris Dataset", lambda: (objects.get_namespaced_custom_object(
            GROUP, VERSION, namespace, "datasets", "iris").get("status") or {}).get(
            "phase") == "Ready", timeout=300, interval=1)
        latencies = apply_to_job_latency(k8s, namespace)
        runs = overhead(k8s, namespace)
    finally:
        delete_namespace(running.cluster.kubeconfig, namespace, timeout=600)

    overheads = [total - fit for total, fit in runs]
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
        f"median {percentile([t for t, _ in runs], 0.5):.1f} s |",
        f"| trainer's own fit time | median {percentile([f for _, f in runs], 0.5):.3f} s |",
        f"| platform overhead (end-to-end minus fit) | median "
        f"{percentile(overheads, 0.5):.1f} s, max {max(overheads):.1f} s |",
        "",
        "The overhead is everything around `fit`: scheduling the Pod, starting Python and "
        "importing scikit-learn, pandas and MLflow, reading the snapshot from S3, holdout and "
        "cross-validation scoring, latency measurement, logging the run and the model to "
        "MLflow, registering it, and the operator noticing the Job's completion.",
    ]
    replace_section("training", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
