"""The local cluster's figures: start-up with cached binaries, memory at rest, the time from
creating a trivial Job to its completion, and (with --cold-build) a cold build of every
binary from empty Go caches.

Run: `.venv/bin/python -m bench.cluster.run [--cold-build]`. It stops and restarts the local
stack, so run it alone. Results replace the `cluster` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from kubernetes import client, watch

from bench.sections import machine, percentile, replace_section
from localkube import build, cluster, images, stack, versions
from localkube.readiness import api_client
from localkube.testing import create_namespace, delete_namespace

STARTS = 3
JOBS = 10
IDLE_SECONDS = 30


def rss_mib(pid: int) -> float:
    """Resident memory of a process and all its descendants."""
    children = Path(f"/proc/{pid}/task/{pid}/children")
    total = 0.0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1]) / 1024
        for child in children.read_text().split():
            total += rss_mib(int(child))
    except FileNotFoundError:
        pass
    return total


def time_starts() -> list[float]:
    durations = []
    for _ in range(STARTS):
        stack.down(lambda _: None)
        started = time.monotonic()
        cluster.up(lambda _: None)
        durations.append(time.monotonic() - started)
    return durations


def time_jobs(state: cluster.ClusterState) -> list[float]:
    k8s = api_client(state.kubeconfig)
    batch = client.BatchV1Api(k8s)
    namespace = create_namespace(state.kubeconfig, prefix="bench")
    durations = []
    try:
        for index in range(JOBS):
            name = f"trivial-{index}-{uuid.uuid4().hex[:4]}"
            job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
                   "spec": {"backoffLimit": 0, "template": {"spec": {
                       "restartPolicy": "Never",
                       "containers": [{"name": "main", "image": images.PYTHON_IMAGE,
                                       "imagePullPolicy": "Never",
                                       "command": ["python", "-c", "pass"]}]}}}}
            started = time.monotonic()
            batch.create_namespaced_job(namespace, job)
            stream = watch.Watch()
            for event in stream.stream(batch.list_namespaced_job, namespace,
                                       field_selector=f"metadata.name={name}",
                                       timeout_seconds=120):
                conditions = event["object"].status.conditions or []
                if any(c.type == "Complete" and c.status == "True" for c in conditions):
                    durations.append(time.monotonic() - started)
                    stream.stop()
    finally:
        delete_namespace(state.kubeconfig, namespace)
    return durations


def cold_build() -> str:
    """Build every family with empty Go build and module caches, as on a fresh machine."""
    with tempfile.TemporaryDirectory() as scratch:
        env = {**os.environ, "XDG_CACHE_HOME": scratch, "GOMODCACHE": f"{scratch}/gomod"}
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "localkube", "build"], env=env, check=True)
        return f"{(time.monotonic() - started) / 60:.1f} min"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cold-build", action="store_true", help="also time a cold build")
    args = parser.parse_args()
    cold = cold_build() if args.cold_build else None
    build.ensure_binaries(list(build.BINARY_FAMILY))

    starts = time_starts()
    state = cluster.up(lambda _: None)
    time.sleep(IDLE_SECONDS)
    memory = {name: rss_mib(pid) for name, pid in state.pids.items()}
    jobs = time_jobs(state)

    lines = [
        "## Local cluster (`python -m bench.cluster.run`)",
        "",
        f"Machine: {machine()}. Kubernetes {versions.KUBERNETES}, etcd {versions.ETCD}.",
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| `cluster.up()` to a Ready node, cached binaries ({STARTS} starts) | median "
        f"{percentile(starts, 0.5):.1f} s, max {max(starts):.1f} s |",
        f"| trivial Job, create to Complete ({JOBS} Jobs, one at a time) | p50 "
        f"{percentile(jobs, 0.5):.2f} s, p99 {percentile(jobs, 0.99):.2f} s |",
    ]
    lines += [f"| memory at rest after {IDLE_SECONDS} s: {name} | {mib:.0f} MiB |"
              for name, mib in memory.items()]
    lines.append(f"| memory at rest: control plane and node together (not the Pods) | "
                 f"{sum(memory.values()):.0f} MiB |")
    if cold:
        lines.append(f"| cold build of every binary (empty Go caches, 2 cores) | {cold} |")
    replace_section("cluster", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
