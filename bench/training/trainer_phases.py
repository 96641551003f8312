"""The trainer's own phases for examples/iris, code trees side by side, without a cluster.

    python -m bench.training.trainer_phases --minio PATH --tree base=DIR --tree new=DIR

Starts a throwaway MinIO and `mlflow server` on 127.0.0.1 (SQLite, artifacts proxied to
MinIO, as the cluster runs it), ingests the builtin iris Dataset once, then runs
`python -m mlcycle_trainer train` with examples/iris's TrainingJob spec: `--runs` rounds,
each running every tree once, in a rotating order (so a noisy neighbour hits them alike). A tree is
a directory holding `trainer_image/` and `contract/`. Prints each phase's median (seconds,
from the trainer's own `TrainerTimings`) and the process's wall time, one column per tree.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import boto3
import yaml

from localkube import processes
from localkube.services import AUTH_CONFIG, MlflowAdmin
from mlcycle_contract import environment as contract

REPOSITORY = Path(__file__).resolve().parents[2]
LOOPBACK = "127.0.0.1"
DATA_BUCKET = "mlcycle-data"
MLFLOW_BUCKET = "mlflow"
WALL = "process wall time"


@contextmanager
def service(name: str, command: list[str], env: dict[str, str], health: str,
            log: Path) -> Iterator[None]:
    pid = processes.start(command, log, env)
    try:
        processes.wait_healthy(name, health, pid, log, timeout=120)
        yield
    finally:
        processes.stop(pid)


@contextmanager
def services(minio: Path, root: Path, basic_auth: bool = False) -> Iterator[dict[str, str]]:
    """MinIO and MLflow; the environment a trainer Pod gets to reach them. With
    `basic_auth`, MLflow checks every request's credentials as the cluster's does (the
    environment then holds its admin's)."""
    user, password = "bench", secrets.token_urlsafe(16)
    s3_port, mlflow_port = processes.free_port(), processes.free_port()
    s3_endpoint = f"http://{LOOPBACK}:{s3_port}"
    s3_env = {
        "AWS_ACCESS_KEY_ID": user,
        "AWS_SECRET_ACCESS_KEY": password,
        "AWS_DEFAULT_REGION": "us-east-1",
        "MLFLOW_S3_ENDPOINT_URL": s3_endpoint,
        "AWS_ENDPOINT_URL_S3": s3_endpoint,
    }
    with ExitStack() as stack:
        stack.enter_context(service(
            "MinIO", [str(minio), "server", str(root / "minio"), "--quiet",
             "--address", f"{LOOPBACK}:{s3_port}"],
            {**os.environ, "MINIO_ROOT_USER": user, "MINIO_ROOT_PASSWORD": password,
             "MINIO_BROWSER": "off"},
            f"{s3_endpoint}/minio/health/live", root / "minio.log"))
        s3 = boto3.client("s3", endpoint_url=s3_endpoint, aws_access_key_id=user,
                          aws_secret_access_key=password, region_name="us-east-1")
        for bucket in (MLFLOW_BUCKET, DATA_BUCKET):
            s3.create_bucket(Bucket=bucket)
        mlflow_url = f"http://{LOOPBACK}:{mlflow_port}"
        auth_app: list[str] = []
        auth_env: dict[str, str] = {}
        credentials: dict[str, str] = {}
        if basic_auth:
            admin = MlflowAdmin(password=secrets.token_urlsafe(16))
            auth_config = root / "basic_auth.ini"
            auth_config.write_text(AUTH_CONFIG.format(database=root / "auth.db",
                                                      admin=admin.username))
            auth_app = ["--app-name", "basic-auth"]
            auth_env = {"MLFLOW_AUTH_CONFIG_PATH": str(auth_config),
                        "MLFLOW_AUTH_ADMIN_PASSWORD": admin.password,
                        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_urlsafe(16)}
            credentials = {contract.MLFLOW_TRACKING_USERNAME.name: admin.username,
                           contract.MLFLOW_TRACKING_PASSWORD.name: admin.password}
        stack.enter_context(service(
            "MLflow", [sys.executable, "-m", "mlflow", "server", *auth_app,
             "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
             "--artifacts-destination", f"s3://{MLFLOW_BUCKET}",
             "--host", LOOPBACK, "--port", str(mlflow_port), "--workers", "1"],
            {**os.environ, **s3_env, **auth_env}, f"{mlflow_url}/health",
            root / "mlflow.log"))
        yield {**s3_env, "MLFLOW_TRACKING_URI": mlflow_url, **credentials}


def trainer_environment(tree: Path, workdir: Path, message_file: Path,
                        env: dict[str, str]) -> dict[str, str]:
    """What a trainer Pod's container gets (the image's own variables, the operator's), with
    `tree`'s code on the path."""
    return {
        "PATH": os.environ["PATH"],
        "HOME": str(workdir),
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": str(workdir / "matplotlib"),
        "GIT_PYTHON_REFRESH": "quiet",
        "MLFLOW_DISABLE_TELEMETRY": "true",  # these three as the image sets them
        "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
        "PYTHONPATH": f"{tree / 'trainer_image'}:{tree / 'contract'}",
        contract.DATA_BUCKET.name: DATA_BUCKET,
        contract.OWNER_UID.name: "uid-bench",
        contract.IMAGE.name: "mlcycle-trainer:bench",
        contract.TERMINATION_LOG.name: str(message_file),
        contract.MLFLOW_EXPERIMENT_NAME.name: "trainer-phases",
        **env,
    }


def run_trainer(
    tree: Path, command: str, env: dict[str, str], workdir: Path
) -> tuple[dict[str, Any], float]:
    """The command's termination message and the process's wall time."""
    message_file = workdir / f"{command}-{secrets.token_hex(4)}.json"
    full_env = trainer_environment(tree, workdir, message_file, env)
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "mlcycle_trainer", command], env=full_env,
                            cwd=workdir, capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{command} in {tree} failed:\n{result.stderr[-3000:]}")
    message: dict[str, Any] = json.loads(message_file.read_text())
    return message, seconds


def iris_spec() -> dict[str, Any]:
    document = yaml.safe_load((REPOSITORY / "examples/iris/trainingjob.yaml").read_text())
    spec: dict[str, Any] = document["spec"]
    return spec


def median_table(runs: dict[str, list[dict[str, float]]]) -> str:
    names = list(runs)
    phases = list(dict.fromkeys(phase for samples in runs.values()
                                for sample in samples for phase in sample))
    width = max(len(phase) for phase in phases)
    lines = [f"{'phase (median s)':<{width}}  " + "  ".join(f"{n:>8}" for n in names)]
    for phase in phases:
        cells = [statistics.median(s.get(phase, 0.0) for s in runs[n]) for n in names]
        lines.append(f"{phase:<{width}}  " + "  ".join(f"{c:8.3f}" for c in cells))
    return "\n".join(lines)


def dataset_environment(name: str, ingested: dict[str, Any]) -> dict[str, str]:
    """What a trainer Pod is told of the Dataset it trains on, from its ingestion's result."""
    return {contract.DATASET_NAME.name: name,
            contract.DATASET_VERSION.name: ingested["version"],
            contract.DATASET_URI.name: ingested["snapshotURI"],
            contract.DATASET_TARGET.name: "target"}


def tree_arguments(doc: str | None) -> tuple[argparse.Namespace, dict[str, Path]]:
    """`--minio`, `--tree NAME=DIR` (repeated) and `--runs`; the trees by name."""
    parser = argparse.ArgumentParser(description=(doc or "").splitlines()[0])
    parser.add_argument("--minio", type=Path, required=True, help="the MinIO server binary")
    parser.add_argument("--tree", action="append", required=True, metavar="NAME=DIR",
                        help="a code tree to run (repeat to compare)")
    parser.add_argument("--runs", type=int, default=3, help="rounds (default 3)")
    arguments = parser.parse_args()
    return arguments, {name: Path(path).resolve() for name, _, path in
                       (entry.partition("=") for entry in arguments.tree)}


def main() -> None:
    arguments, trees = tree_arguments(__doc__)
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in trees}
    with tempfile.TemporaryDirectory(prefix="trainer-phases-") as directory:
        root = Path(directory)
        with services(arguments.minio, root) as env:
            dataset_spec = {"source": {"builtin": "iris"}, "target": "target"}
            ingested, _ = run_trainer(next(iter(trees.values())), contract.COMMAND_INGEST, {
                **env, contract.OWNER_NAME.name: "iris",
                contract.DATASET_SPEC.name: json.dumps(dataset_spec)}, root)
            train_env = {
                **env,
                contract.OWNER_NAME.name: "iris-rf",
                contract.TRAINING_SPEC.name: json.dumps(iris_spec()),
                **dataset_environment("iris", ingested),
            }
            names = list(trees)
            for round_number in range(arguments.runs):
                # Each round starts with another tree: whichever runs right after another
                # training shares the machine with the services still finishing its requests.
                shift = round_number % len(names)
                for name in names[shift:] + names[:shift]:
                    tree = trees[name]
                    message, seconds = run_trainer(tree, contract.COMMAND_TRAIN, train_env, root)
                    phases = dict(message["timings"]["phases"])
                    runs[name].append({**phases, WALL: seconds})
                    print(f"round {round_number + 1} {name}: {seconds:.2f} s "
                          f"{json.dumps(phases)}", flush=True)
    print(median_table(runs))


if __name__ == "__main__":
    main()
