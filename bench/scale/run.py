"""The operator at scale and in failover, on the local stack (`make bench-operator`).

The stack's own operator is paused for the run; the benchmark starts operator processes of
the same code with the same settings, whose MLflow requests go through a counting proxy, so
MLflow's load is counted on the wire, not reported by the code under measurement.

- Load: 10 namespaces with 100 Datasets and 100 TrainingJobs each (1,000 of each kind).
  Each namespace has a ResourceQuota of 0 Pods: the operator does all its work (each
  namespace's credentials, an ingestion Job per Dataset, every status), while the Jobs'
  Pods are refused, so the figures are the operator's, not a 2-core node's running 1,000
  trainers. The TrainingJobs wait for their Datasets.
- Create -> first status: 100 Datasets created at once (20 client threads); from each
  create's answer to its first status on a watch. In a namespace in use (one Dataset there
  already has its status: the operator has set up the namespace's credentials), the target's
  figure: p50 and p99 are the medians of 3 bursts' (each burst's Datasets deleted once the
  operator has made their ingestion Jobs, and the next burst created once the garbage
  collector has deleted those Jobs: a burst starts on a quiet cluster, not over the
  deletions of the one before); and in a new namespace, where the first objects
  wait for that one-time setup (MinIO and MLflow users; MinIO's admin API derives a key in
  64 MiB per call).
- Operator RSS: the peak over the whole run.
- ModelDeployments: the iris example trained for real in a namespace of its own, then 20,
  then 200 ModelDeployments there (0 Pods allowed) following its `champion` alias, polling
  every 5 s. MLflow requests per second at rest over 60 s with each count, and the
  operator's CPU over the second window: everything at rest (2,000 objects and 200
  deployments), measured once the deployments' first resolves are over.
- Platform overhead: bench.training's end-to-end minus fit, median of 3 runs, with the
  stack's operator.
- Failover: two replicas peering as the chart's do (its lifetimeSeconds); SIGKILL the
  active one and create a Dataset at once: the time until the standby writes its status,
  median of 3; and no Dataset gets a second ingestion Job.

Run: `.venv/bin/python -m bench.scale.run`. The last line is one JSON object; results
replace the `operator` section of docs/benchmarks.md.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client, watch

from bench.scale.proxy import CountingProxy
from bench.sections import machine, percentile, replace_section
from bench.serving.procfs import PeakRss
from bench.training.breakdown import RunTimeline, breakdown_table
from bench.training.run import overhead
from localkube import chart_services, processes, stack
from localkube.paths import REPO_ROOT
from localkube.readiness import api_client
from localkube.release import CHART
from localkube.stack import Stack
from localkube.testing import create_namespace, delete_namespace, wait_for

GROUP, VERSION = "mlcycle.dev", "v1alpha1"
NAMESPACES, PER_NAMESPACE, BURST, BURST_ROUNDS = 10, 100, 100, 3
DEPLOYMENTS = (20, 200)
POLL_SECONDS, WINDOW_SECONDS, SETTLE_SECONDS = 5, 60, 20
FAILOVER_ROUNDS = 3
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def example(path: str, name: str, **spec: Any) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((REPO_ROOT / "examples" / path).read_text())
    document["metadata"]["name"] = name
    document["spec"].update(spec)
    return document


def no_pods(core: client.CoreV1Api, namespace: str) -> None:
    core.create_namespaced_resource_quota(namespace, {
        "metadata": {"name": "no-pods"}, "spec": {"hard": {"pods": "0"}}})


def create(objects: client.CustomObjectsApi, namespace: str, plural: str,
           body: dict[str, Any]) -> float:
    objects.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)
    return time.monotonic()


def with_status(objects: client.CustomObjectsApi, namespace: str, plural: str) -> int:
    found = objects.list_namespaced_custom_object(GROUP, VERSION, namespace, plural)["items"]
    return sum(1 for item in found if (item.get("status") or {}).get("phase"))


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def in_use(k8s: client.ApiClient, namespace: str) -> None:
    """One Dataset with its status: the operator has set the namespace's tenant up."""
    objects = client.CustomObjectsApi(k8s)
    create(objects, namespace, "datasets", example("iris/dataset.yaml", "first"))
    wait_for("the namespace's first status", lambda: with_status(
        objects, namespace, "datasets") == 1, timeout=120, interval=0.2)


def first_status_latencies(k8s: client.ApiClient, namespace: str,
                           prefix: str = "burst") -> list[float]:
    """BURST Datasets created at once; seconds from each create's answer to its status."""
    objects = client.CustomObjectsApi(k8s)
    names = [f"{prefix}-{index}" for index in range(BURST)]
    seen: dict[str, float] = {}
    stream = watch.Watch()

    def watch_statuses() -> None:
        for event in stream.stream(objects.list_namespaced_custom_object, GROUP, VERSION,
                                   namespace, "datasets", timeout_seconds=300):
            body = event["object"]
            name = body["metadata"]["name"]
            if (body.get("status") or {}).get("phase") and name in names and name not in seen:
                seen[name] = time.monotonic()
            if len(seen) == BURST:
                stream.stop()

    watcher = threading.Thread(target=watch_statuses, daemon=True)
    watcher.start()
    time.sleep(1)  # the watch is established
    with ThreadPoolExecutor(20) as pool:
        created = dict(zip(names, pool.map(
            lambda name: create(objects, namespace, "datasets",
                                example("iris/dataset.yaml", name)), names), strict=True))
    watcher.join(timeout=300)
    missing = set(names) - set(seen)
    assert not missing, f"{len(missing)} Datasets got no status in 300 s"
    return [max(0.0, seen[name] - created[name]) for name in names]


def warm_bursts(k8s: client.ApiClient, namespace: str) -> list[list[float]]:
    """BURST_ROUNDS bursts in a namespace in use, each one's latencies."""
    return [warm_burst(k8s, namespace, f"burst{round_}") for round_ in range(BURST_ROUNDS)]


def warm_burst(k8s: client.ApiClient, namespace: str, prefix: str) -> list[float]:
    """A burst whose Datasets are deleted once the operator has created their ingestion
    Jobs, and whose Jobs are gone (the garbage collector's) before it returns, so that the
    next burst starts on a quiet cluster and the load after the bursts is the issue's."""
    objects = client.CustomObjectsApi(k8s)
    latencies = first_status_latencies(k8s, namespace, prefix)
    wait_for("the burst's ingestion Jobs", lambda: jobs_named(k8s, namespace, prefix) == BURST,
             timeout=300, interval=1)
    with ThreadPoolExecutor(20) as pool:
        list(pool.map(lambda index: objects.delete_namespaced_custom_object(
            GROUP, VERSION, namespace, "datasets", f"{prefix}-{index}"), range(BURST)))
    wait_for("the burst's Datasets to be gone", lambda: len(
        objects.list_namespaced_custom_object(GROUP, VERSION, namespace, "datasets")[
            "items"]) == 1, timeout=300, interval=1)
    wait_for("the burst's Jobs to be gone", lambda: jobs_named(k8s, namespace, prefix) == 0,
             timeout=300, interval=1)
    return latencies


def jobs_named(k8s: client.ApiClient, namespace: str, prefix: str) -> int:
    """How many Jobs in the namespace are named after an object `prefix`-<index>."""
    return sum(1 for job in client.BatchV1Api(k8s).list_namespaced_job(namespace).items
               if job.metadata.name.startswith(f"{prefix}-"))


def load(k8s: client.ApiClient, namespaces: list[str]) -> float:
    """The rest of the load; seconds until every object has a status."""
    objects = client.CustomObjectsApi(k8s)
    started = time.monotonic()
    work = [(namespace, "datasets", example("iris/dataset.yaml", f"data-{index}"))
            for namespace in namespaces[1:] for index in range(PER_NAMESPACE)]
    work += [(namespace, "trainingjobs", example(
        "iris/trainingjob.yaml", f"train-{index}",
        datasetRef={"name": f"data-{index}" if namespace != namespaces[0] else f"burst-{index}"},
        registry={"modelName": f"{namespace}-{index}"}))
        for namespace in namespaces for index in range(PER_NAMESPACE)]
    with ThreadPoolExecutor(20) as pool:
        list(pool.map(lambda item: create(objects, *item), work))

    def settled() -> bool:
        return all(with_status(objects, namespace, plural) == PER_NAMESPACE
                   for namespace in namespaces for plural in ("datasets", "trainingjobs"))

    wait_for("every object's first status", settled, timeout=1800, interval=5)
    return time.monotonic() - started


def train_champion(running: Stack, k8s: client.ApiClient, namespace: str) -> str:
    """The iris example trained for real; the registered model's name."""
    objects = client.CustomObjectsApi(k8s)
    model = f"bench-{namespace}"
    create(objects, namespace, "datasets", example("iris/dataset.yaml", "iris"))
    create(objects, namespace, "trainingjobs", example("iris/trainingjob.yaml", "iris-rf",
                                                       registry={"modelName": model,
                                                                 "alias": "champion"}))

    def succeeded() -> bool:
        found = objects.get_namespaced_custom_object(GROUP, VERSION, namespace, "trainingjobs",
                                                     "iris-rf")
        phase = (found.get("status") or {}).get("phase")
        assert phase != "Failed", found["status"]
        return phase == "Succeeded"

    wait_for("the champion's training", succeeded, timeout=900, interval=2)
    return model


def follow(k8s: client.ApiClient, namespace: str, model: str, start: int, stop: int) -> None:
    objects = client.CustomObjectsApi(k8s)
    with ThreadPoolExecutor(20) as pool:
        list(pool.map(lambda index: create(objects, namespace, "modeldeployments", example(
            "iris/modeldeployment.yaml", f"follow-{index}", model={"name": model,
                                                                    "alias": "champion"},
            replicas=1, pollIntervalSeconds=POLL_SECONDS)), range(start, stop)))
    wait_for(f"{stop} ModelDeployments' status",
             lambda: with_status(objects, namespace, "modeldeployments") == stop,
             timeout=600, interval=2)


def quiet(proxy: CountingProxy) -> None:
    """Until the new deployments' first resolves are over: no more MLflow requests in
    SETTLE_SECONDS than the shared board's reads (one per poll)."""
    def settled() -> bool:
        before = proxy.total()
        time.sleep(SETTLE_SECONDS)
        return proxy.total() - before <= SETTLE_SECONDS / POLL_SECONDS + 1

    wait_for("the deployments to settle", settled, timeout=900, interval=0)


def at_rest(proxy: CountingProxy, pid: int) -> tuple[float, float]:
    """(MLflow requests per second, operator CPU % of a core) over WINDOW_SECONDS, once the
    operator is at rest."""
    quiet(proxy)
    requests, cpu = proxy.total(), cpu_seconds(pid)
    time.sleep(WINDOW_SECONDS)
    return ((proxy.total() - requests) / WINDOW_SECONDS,
            100 * (cpu_seconds(pid) - cpu) / WINDOW_SECONDS)


def chart_peering_lifetime() -> str:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    return str(values["operator"]["peering"]["lifetimeSeconds"])


def failover(running: Stack, k8s: client.ApiClient, namespace: str, round_: int) -> float:
    """Seconds from SIGKILL of the active replica to the standby's first status."""
    objects = client.CustomObjectsApi(k8s)
    logs = running.paths.logs
    settings = {"MLCYCLE_NAMESPACES": namespace, "MLCYCLE_PEERING": f"bench-{round_}",
                "MLCYCLE_PEERING_LIFETIME": chart_peering_lifetime()}
    active = stack.start_operator_process(running, logs / f"bench-active-{round_}.log",
                                          **settings, MLCYCLE_PEERING_PRIORITY="2")
    standby = stack.start_operator_process(running, logs / f"bench-standby-{round_}.log",
                                           **settings, MLCYCLE_PEERING_PRIORITY="1")
    try:
        before = f"before-{round_}"
        create(objects, namespace, "datasets", example("iris/dataset.yaml", before))
        wait_for("the active replica's first status", lambda: (objects.get_namespaced_custom_object(
            GROUP, VERSION, namespace, "datasets", before).get("status") or {}).get("phase"),
            timeout=120, interval=0.1)
        time.sleep(2 + 1.7 * round_)  # kill at different moments of the keep-alive cycle
        os.kill(active, signal.SIGKILL)
        killed = time.monotonic()
        after = f"after-{round_}"
        create(objects, namespace, "datasets", example("iris/dataset.yaml", after))
        wait_for("the standby's first status", lambda: (objects.get_namespaced_custom_object(
            GROUP, VERSION, namespace, "datasets", after).get("status") or {}).get("phase"),
            timeout=300, interval=0.1)
        return time.monotonic() - killed
    finally:
        for pid in (active, standby):
            if processes.alive(pid):
                processes.stop(pid)


def ingestion_jobs_per_dataset(k8s: client.ApiClient, namespace: str) -> int:
    jobs = client.BatchV1Api(k8s).list_namespaced_job(namespace).items
    owners = [next(o.name for o in job.metadata.owner_references) for job in jobs]
    return max(owners.count(owner) for owner in set(owners))


def main() -> None:
    load_at_start = os.getloadavg()[0]
    running = stack.up()
    kubeconfig = running.cluster.kubeconfig
    k8s = api_client(kubeconfig)
    core = client.CoreV1Api(k8s)
    namespaces = [create_namespace(kubeconfig, prefix=f"scale{index}")
                  for index in range(NAMESPACES)]
    warm = create_namespace(kubeconfig, prefix="scaleburst")
    serving = create_namespace(kubeconfig, prefix="scalemd")
    failing_over = create_namespace(kubeconfig, prefix="failover")
    for namespace in [*namespaces, warm, failing_over]:
        no_pods(core, namespace)
    results: dict[str, Any] = {}
    stack.pause_operator(running.paths)
    try:
        chart_services.apply_peering_crds(running.paths, running.cluster)
        times = [failover(running, k8s, failing_over, index) for index in range(FAILOVER_ROUNDS)]
        duplicated = ingestion_jobs_per_dataset(k8s, failing_over) > 1
        results["failover_s"] = round(statistics.median(times), 1)
        print(f"failover: {times} s, a Dataset ingested twice: {duplicated}", flush=True)
        with CountingProxy(running.services.mlflow_url) as proxy:
            pid = stack.start_operator_process(
                running, running.paths.logs / "bench-operator.log",
                MLCYCLE_OPERATOR_MLFLOW_TRACKING_URI=proxy.url)
            rss = PeakRss(pid)
            rss.start()
            try:
                cold = first_status_latencies(k8s, namespaces[0])
                wait_for("the first burst's ingestion Jobs", lambda: jobs_named(
                    k8s, namespaces[0], "burst") == BURST, timeout=300, interval=1)
                in_use(k8s, warm)
                bursts = warm_bursts(k8s, warm)
                rss_peaks = {"bursts": rss.window_peak()}
                load_seconds = load(k8s, namespaces)
                rss_peaks["the rest of the load"] = rss.window_peak()
                model = train_champion(running, k8s, serving)
                no_pods(core, serving)
                rss_peaks["a training"] = rss.window_peak()
                rates = {}
                for count, start in zip(DEPLOYMENTS, (0, *DEPLOYMENTS[:-1]), strict=True):
                    follow(k8s, serving, model, start, count)
                    rates[count] = at_rest(proxy, pid)
                    rss_peaks[f"{count} ModelDeployments"] = rss.window_peak()
                results.update(
                    # MB as the target says (10^6 bytes; 300 MB is 286 MiB).
                    operator_rss_mb=round(rss.overall / 1e6),
                    create_status_p50_ms=round(statistics.median(
                        percentile(burst, 0.5) for burst in bursts) * 1000),
                    create_status_p99_ms=round(statistics.median(
                        percentile(burst, 0.99) for burst in bursts) * 1000),
                    idle_cpu_pct=round(rates[DEPLOYMENTS[-1]][1], 2),
                    mlflow_rps_idle_200_deployments=round(rates[200][0], 3),
                    mlflow_rps_idle_20_deployments=round(rates[20][0], 3),
                )
                print(json.dumps(results), flush=True)
            finally:
                rss.stop()
                processes.stop(pid)
    finally:
        stack.resume_operator(running)
        for namespace in [*namespaces, warm, serving, failing_over]:
            delete_namespace(kubeconfig, namespace, timeout=900)
    overhead_namespace = create_namespace(kubeconfig, prefix="overhead")
    try:
        create(client.CustomObjectsApi(k8s), overhead_namespace, "datasets",
               example("iris/dataset.yaml", "iris"))
        runs = overhead(k8s, overhead_namespace)
    finally:
        delete_namespace(kubeconfig, overhead_namespace, timeout=600)
    results["platform_overhead_s"] = round(statistics.median(
        timeline.end_to_end - fit for timeline, fit in runs), 1)
    report(results, rss_peaks, cold, bursts, load_seconds, times, duplicated, runs,
           (load_at_start, os.getloadavg()[0]))
    print(json.dumps(results))


def report(results: dict[str, Any], rss_peaks: dict[str, int], cold: list[float],
           bursts: list[list[float]],
           load_seconds: float,
           failovers: list[float], duplicated: bool,
           training_runs: list[tuple[RunTimeline, float]],
           load_average: tuple[float, float]) -> None:
    lines = [
        "## The operator at scale (`make bench-operator`)",
        "",
        f"Machine: {machine()}. The real operator, control plane, MLflow and MinIO of the "
        "local stack; MLflow's requests counted on the wire by a proxy. The machine's load "
        f"average (1 min) at the start and the end of the run: {load_average[0]:.1f}, "
        f"{load_average[1]:.1f}; the cluster shares the machine's cores, so every figure moves "
        "with it.",
        "",
        "| figure | value | target |",
        "| --- | --- | --- |",
        f"| operator peak RSS, {NAMESPACES * PER_NAMESPACE} Datasets + "
        f"{NAMESPACES * PER_NAMESPACE} TrainingJobs over {NAMESPACES} namespaces + "
        f"{DEPLOYMENTS[-1]} ModelDeployments (the peak of each phase, in order: "
        f"{', '.join(f'{phase} {peak / 1e6:.0f}' for phase, peak in rss_peaks.items())} MB) "
        f"| {results['operator_rss_mb']} MB "
        f"({results['operator_rss_mb'] * 1e6 / 2**20:.0f} MiB) | < 300 MB |",
        f"| create -> first status, {BURST} Datasets created at once in a namespace in use, "
        f"median of {BURST_ROUNDS} bursts (p50s "
        f"{', '.join(f'{percentile(b, 0.5) * 1000:.0f}' for b in bursts)} ms; p99s "
        f"{', '.join(f'{percentile(b, 0.99) * 1000:.0f}' for b in bursts)} ms) "
        f"| p50 {results['create_status_p50_ms']} ms, p99 {results['create_status_p99_ms']} ms "
        "| p50 < 200 ms, p99 < 1 s |",
        f"| the same in a new namespace (its credentials set up first) | p50 "
        f"{percentile(cold, 0.5) * 1000:.0f} ms, p99 {percentile(cold, 0.99) * 1000:.0f} ms | |",
        f"| the rest of the load ({2 * NAMESPACES * PER_NAMESPACE - BURST} objects) until "
        f"each has a status | {load_seconds:.0f} s | |",
        f"| operator CPU at rest (all of the above in place) | {results['idle_cpu_pct']}% of "
        "a core | < 5% |",
        f"| MLflow requests/s at rest, {DEPLOYMENTS[0]} ModelDeployments following an alias "
        f"(poll every {POLL_SECONDS} s) | {results['mlflow_rps_idle_20_deployments']} | |",
        f"| MLflow requests/s at rest, {DEPLOYMENTS[-1]} ModelDeployments | "
        f"{results['mlflow_rps_idle_200_deployments']} | no growth with their number |",
        f"| platform overhead per training run (end to end minus fit, median of 3) | "
        f"{results['platform_overhead_s']} s | < 5 s |",
        f"| failover: SIGKILL of the active replica -> the standby's first status "
        f"(lifetimeSeconds {chart_peering_lifetime()}, median of {FAILOVER_ROUNDS}: "
        f"{', '.join(f'{t:.1f}' for t in failovers)} s) | {results['failover_s']} s | < 15 s |",
        f"| a Dataset ingested twice across the failovers | {'yes' if duplicated else 'no'} "
        "| no |",
    ]
    lines += [
        "",
        "Where a training run's time goes (median of the 3 runs; bench.training.breakdown):",
        "",
        *breakdown_table([timeline for timeline, _ in training_runs],
                         [fit for _, fit in training_runs]),
    ]
    replace_section("operator", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
