"""The whole mlcycle stack on the local cluster: cluster, MinIO, MLflow and the operator from
the Helm chart (localkube.chart_services), and the CRDs.

`up()` reuses whatever already runs; the test fixtures and `make up` / `make demo` share it.
It also builds the images when their sources changed (a second when nothing did), loads them
into every node and rolls the chart's operator onto them: an edit to operator, trainer,
serving or contract code is in the next Pod. `LOCALKUBE_OPERATOR=process` runs the operator
as a local process instead, configured as the chart configures its Pod: the fast path for
operator edits (no image to rebuild). The tests that SIGKILL the operator (`kill_operator`),
arm its kill points (`LocalPaths.kill_points`) or read its endpoints (`operator_urls`) act on
whichever of the two runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from localkube import build, chart_services, cluster, processes, services
from localkube.cluster import ClusterState
from localkube.images import WORKLOAD_IMAGES
from localkube.paths import REPO_ROOT, LocalPaths, local_paths
from localkube.realnode import containerd
from localkube.realnode import node as realnode
from localkube.services import S3Credentials, ServicesState
from localkube.testing import wait_for

CRDS_DIR = REPO_ROOT / "crds"
OPERATOR_MODE_VARIABLE = "LOCALKUBE_OPERATOR"


@dataclass(frozen=True)
class Stack:
    cluster: ClusterState
    services: ServicesState
    credentials: S3Credentials
    paths: LocalPaths
    images: dict[str, str]  # trainer and serving: their references in each node's containerd

    def kubectl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.cluster.kubectl), "--kubeconfig", str(self.cluster.kubeconfig), *args],
            capture_output=True, text=True, check=check, timeout=300,
        )


def operator_from_chart() -> bool:
    """Whether the stack's operator is the chart's Deployment (the default with the chart's
    services) or a local process (`LOCALKUBE_OPERATOR=process`; the only choice with
    `LOCALKUBE_SERVICES=process`)."""
    services_from_chart = services.from_chart()
    chart = services.chart_or_process(OPERATOR_MODE_VARIABLE,
                                      "chart" if services_from_chart else "process")
    if chart and not services_from_chart:
        raise SystemExit(f"{OPERATOR_MODE_VARIABLE}=chart needs the chart's MinIO and MLflow: "
                         f"unset {services.MODE_VARIABLE}")
    return chart


def _operator_pid_file(paths: LocalPaths) -> Path:
    return paths.root / "operator.pid"


def operator_pid(paths: LocalPaths) -> int | None:
    try:
        pid = int(_operator_pid_file(paths).read_text())
    except (FileNotFoundError, ValueError):
        return None
    return pid if processes.alive(pid) else None


def image_runtime(paths: LocalPaths, reference: str) -> str:
    """`python=X,sklearn=Y,numpy=Z` of an image on the runtime lock, asked of the image: the
    operator, a local process, has another Python than the images' base."""
    script = ("from mlcycle_contract.runtime import current_runtime; "
              "print(','.join(f'{k}={v}' for k, v in current_runtime().items()))")
    return containerd.run(realnode.node_dirs(paths), reference,
                          ["python", "-c", script]).strip()


def operator_environment(stack: Stack) -> dict[str, str]:
    """The operator's settings for the local stack: pods reach MLflow and MinIO on the bridge,
    and run the images built here, which no registry has (so they are never pulled)."""
    state, images = stack.services, stack.images
    return {
        **os.environ,
        "KUBECONFIG": str(stack.cluster.kubeconfig),
        "MLCYCLE_MLFLOW_TRACKING_URI": state.mlflow_url,
        "MLCYCLE_S3_ENDPOINT": state.s3_endpoint,
        "MLCYCLE_DATA_BUCKET": state.data_bucket,
        "MLCYCLE_HEALTH_PORT": str(processes.free_port()),
        "MLCYCLE_METRICS_PORT": str(processes.free_port()),
        "MLCYCLE_TRAINER_IMAGE": images["trainer"],
        "MLCYCLE_SERVING_IMAGE": images["serving"],
        "MLCYCLE_IMAGE_PULL_POLICY": "Never",
        "MLCYCLE_SERVING_RUNTIME": image_runtime(stack.paths, images["serving"]),
        "MLCYCLE_KILL_POINTS": str(stack.paths.kill_points),
    }


def start_operator(stack: Stack) -> int:
    log = stack.paths.logs / "operator.log"
    pid = start_operator_process(stack, log)
    _operator_pid_file(stack.paths).write_text(str(pid))
    return pid


def start_operator_process(stack: Stack, log: Path, **settings: str) -> int:
    """An operator process with the stack's environment and `settings` on top (MLCYCLE_*
    variables: a benchmark's replicas, peering, proxied endpoints); not the stack's own."""
    return processes.start([sys.executable, "-m", "mlcycle"], log,
                           env={**operator_environment(stack),
                                **services.admin_environment(stack.paths), **settings})


def process_environment(pid: int) -> dict[str, str]:
    return dict(entry.split("=", 1) for entry in
                Path(f"/proc/{pid}/environ").read_text().split("\0") if "=" in entry)


def operator_images(pid: int) -> dict[str, str]:
    """The workload images the running operator was started with."""
    variables = process_environment(pid)
    return {name: variables.get(f"MLCYCLE_{name.upper()}_IMAGE", "")
            for name in WORKLOAD_IMAGES}


def stop_operator(paths: LocalPaths) -> None:
    pid = operator_pid(paths)
    if pid is not None:
        processes.stop(pid)
    _operator_pid_file(paths).unlink(missing_ok=True)


def install_crds(stack_cluster: ClusterState) -> None:
    subprocess.run(
        [str(stack_cluster.kubectl), "--kubeconfig", str(stack_cluster.kubeconfig), "apply",
         "--server-side", "-f", str(CRDS_DIR)],
        check=True, capture_output=True, text=True, timeout=120,
    )
    subprocess.run(
        [str(stack_cluster.kubectl), "--kubeconfig", str(stack_cluster.kubeconfig), "wait",
         "--for=condition=Established", "--timeout=60s", "-f", str(CRDS_DIR)],
        check=True, capture_output=True, text=True, timeout=120,
    )


def up(progress: build.Progress = build.say, nodes: int | None = None) -> Stack:
    """The stack on `nodes` real nodes (cluster.up says which count when None)."""
    paths = local_paths()
    cluster_was_running = cluster.is_running(cluster.load_state(paths), paths)
    stack_cluster = cluster.up(progress, nodes=nodes)
    service_state = services.load_state(paths)
    from_chart = services.from_chart()
    if not (cluster_was_running and services.is_running(paths, service_state)
            and service_state is not None
            and (service_state.release_namespace is not None) == from_chart):
        # New MinIO and MLflow listen on new addresses: an operator still running knows the old.
        stop_operator(paths)
        services.down(paths, progress)
        service_state = (chart_services.up(paths, stack_cluster, progress) if from_chart
                         else services.up(paths, stack_cluster.host_ip, progress))
    assert service_state is not None
    images = realnode.load_images(paths, WORKLOAD_IMAGES, stack_cluster.nodes, progress)
    stack = Stack(stack_cluster, service_state, services.load_credentials(paths), paths, images)
    install_crds(stack_cluster)
    if operator_from_chart():
        stop_operator(paths)
        chart_services.run_operator(paths, stack_cluster, images, service_state.mlflow_url,
                                    progress)
        return stack
    if service_state.release_namespace is not None:
        chart_services.pause_operator(paths)
    running = operator_pid(paths)
    if running is not None and operator_images(running) != images:
        progress("The trainer or serving image changed: restarting the operator with it")
        stop_operator(paths)
        running = None
    if running is None:
        start_operator(stack)
        progress("The mlcycle operator is running (log: .local/logs/operator.log)")
    return stack


def operator_running(paths: LocalPaths) -> bool:
    """The stack's operator, a process or the chart's, runs."""
    return operator_pid(paths) is not None or chart_services.operator_running(paths)


def pause_operator(paths: LocalPaths) -> None:
    """Nothing of the stack's operator acts: its process stopped, the chart's scaled to 0."""
    stop_operator(paths)
    if operator_from_chart():
        chart_services.pause_operator(paths)


def resume_operator(running: Stack) -> None:
    """The stack's operator running again, as `up()` left it."""
    if operator_from_chart():
        stop_operator(running.paths)
        chart_services.resume_operator(running.paths)
    elif operator_pid(running.paths) is None:
        start_operator(running)


def _running_operator_pid(paths: LocalPaths) -> int:
    pid = operator_pid(paths)
    if pid is None:
        raise RuntimeError("no operator process runs")
    return pid


def kill_operator(running: Stack) -> None:
    """SIGKILL the operator, as a crash would (no goodbye to its peers), and return once it
    runs again: the kubelet restarts the chart's container; a local process (its process
    group) is started again here."""
    if operator_from_chart():
        chart_services.kill_operator(running.paths)
        return
    pid = _running_operator_pid(running.paths)
    os.killpg(pid, signal.SIGKILL)
    wait_for("the operator to die", lambda: not processes.alive(pid), timeout=10, interval=0.05)
    start_operator(running)


def operator_urls(running: Stack) -> tuple[str, str]:
    """Where the host reaches the running operator's /healthz and /metrics: the chart's Pod
    at its IP (the node's bridge routes it), or the local process's ports."""
    if operator_from_chart():
        pod = chart_services.operator_pod(running.paths)
        ports = {port.name: port.container_port for port in pod.spec.containers[0].ports}
        return (f"http://{pod.status.pod_ip}:{ports['health']}",
                f"http://{pod.status.pod_ip}:{ports['metrics']}")
    variables = process_environment(_running_operator_pid(running.paths))
    return (f"http://127.0.0.1:{variables['MLCYCLE_HEALTH_PORT']}",
            f"http://127.0.0.1:{variables['MLCYCLE_METRICS_PORT']}")


@contextmanager
def operator_process(running: Stack) -> Iterator[int]:
    """A fresh operator process (its pid), with the stack's own operator paused meanwhile and
    resumed after: one that reads the kill-points file, which a running process may predate."""
    pause_operator(running.paths)
    try:
        yield start_operator(running)
    finally:
        resume_operator(running)


def operator_log(running: Stack) -> str:
    if operator_from_chart():
        return chart_services.operator_log(running.paths)
    return (running.paths.logs / "operator.log").read_text(errors="replace")


def down(progress: build.Progress = build.say) -> None:
    paths = local_paths()
    stop_operator(paths)
    services.down(paths, progress)
    cluster.down(progress)
