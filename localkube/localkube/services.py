"""The services the ML lifecycle needs beside the cluster: MinIO (S3) and an MLflow server.

By default they are the Helm chart's Pods (localkube.chart_services), as a user installs
them. `LOCALKUBE_SERVICES=process` runs them as local processes instead, which this module
starts: both listen on the bridge address, so the host and every pod reach them. MinIO is built
from the Go module proxy like the control plane. MLflow keeps runs and registered models
in SQLite by default (PostgreSQL or any SQL store through `MLCYCLE_MLFLOW_BACKEND_URI`)
and proxies artifacts to a MinIO bucket. It runs MLflow's own basic-auth app with
`default_permission = NO_PERMISSIONS`: a user sees only what it created or was granted.
MinIO's root and MLflow's admin credentials are generated once per start, written only to
0600 files and handed to processes (MinIO, MLflow, the operator) through their environment;
no Pod gets them (the operator gives each namespace its own users: mlcycle.tenancy).
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
from pathlib import Path

import boto3
from pydantic import BaseModel

from localkube import build, processes
from localkube.paths import LocalPaths

MLFLOW_BUCKET = "mlflow"
DATA_BUCKET = "mlcycle-data"
BACKEND_URI_VARIABLE = "MLCYCLE_MLFLOW_BACKEND_URI"
MODE_VARIABLE = "LOCALKUBE_SERVICES"
HEALTH_PATHS = {"minio": "/minio/health/live", "mlflow": "/health"}


class S3Credentials(BaseModel):
    access_key: str
    secret_key: str

    def __repr__(self) -> str:  # never print the secret, even by accident
        return f"S3Credentials(access_key={self.access_key!r}, secret_key=***)"

    __str__ = __repr__


class MlflowAdmin(BaseModel):
    username: str = "admin"
    password: str

    def __repr__(self) -> str:
        return f"MlflowAdmin(username={self.username!r}, password=***)"

    __str__ = __repr__


class ServicesState(BaseModel):
    s3_endpoint: str
    mlflow_url: str
    mlflow_bucket: str = MLFLOW_BUCKET
    data_bucket: str = DATA_BUCKET
    pids: dict[str, int]  # the local processes'; none when they run from the chart
    release_namespace: str | None = None  # where the chart's release runs them


def chart_or_process(variable: str, default: str = "chart") -> bool:
    """Whether the environment `variable` says `chart` (True) or `process` (False)."""
    mode = os.environ.get(variable, default)
    if mode not in ("chart", "process"):
        raise SystemExit(f"{variable}={mode!r}: use 'chart' (the default) or 'process'")
    return mode == "chart"


def from_chart() -> bool:
    """Whether `make up` installs MinIO and MLflow from the chart (the default) or starts them
    as local processes."""
    return chart_or_process(MODE_VARIABLE)


def health_url(state: ServicesState, name: str) -> str:
    base = state.s3_endpoint if name == "minio" else state.mlflow_url
    return base + HEALTH_PATHS[name]


def credentials_file(paths: LocalPaths) -> Path:
    return paths.root / "s3-credentials.json"


def load_credentials(paths: LocalPaths) -> S3Credentials:
    return S3Credentials.model_validate_json(credentials_file(paths).read_text())


def mlflow_admin_file(paths: LocalPaths) -> Path:
    return paths.root / "mlflow-admin.json"


def load_mlflow_admin(paths: LocalPaths) -> MlflowAdmin:
    return MlflowAdmin.model_validate_json(mlflow_admin_file(paths).read_text())


def admin_environment(paths: LocalPaths) -> dict[str, str]:
    """The operator's admin power, and only the operator's: MinIO's root user (to make each
    namespace's user and policy) and MLflow's admin (each namespace's user)."""
    root, admin = load_credentials(paths), load_mlflow_admin(paths)
    return {"MINIO_ROOT_USER": root.access_key, "MINIO_ROOT_PASSWORD": root.secret_key,
            "MLFLOW_TRACKING_USERNAME": admin.username,
            "MLFLOW_TRACKING_PASSWORD": admin.password}


def write_private(path: Path, model: BaseModel) -> None:
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(model.model_dump_json())


AUTH_CONFIG = """[mlflow]
default_permission = NO_PERMISSIONS
database_uri = sqlite:///{database}
admin_username = {admin}
authorization_function = mlflow.server.auth:authenticate_request_basic_auth
# Without this cache MLflow re-runs the password hash (PBKDF2) two or three times per request:
# a training run's requests kept the server's one core busy. A password changed through the
# API drops its entry at once (one worker); the TTL bounds any other staleness.
auth_cache_ttl_seconds = 60
"""


def s3_client(state: ServicesState, credentials: S3Credentials) -> object:
    return boto3.client(
        "s3",
        endpoint_url=state.s3_endpoint,
        aws_access_key_id=credentials.access_key,
        aws_secret_access_key=credentials.secret_key,
        region_name="us-east-1",
    )


def s3_environment(state: ServicesState, credentials: S3Credentials) -> dict[str, str]:
    """The standard variables that boto3 and MLflow read."""
    return {
        "AWS_ACCESS_KEY_ID": credentials.access_key,
        "AWS_SECRET_ACCESS_KEY": credentials.secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "MLFLOW_S3_ENDPOINT_URL": state.s3_endpoint,
    }


def up(paths: LocalPaths, host_ip: str, progress: build.Progress = build.say) -> ServicesState:
    """Start MinIO and MLflow with fresh data; record their pids and addresses."""
    minio = build.ensure_binaries(["minio"], progress)["minio"]
    for fresh in (paths.root / "minio", paths.root / "mlflow"):
        shutil.rmtree(fresh, ignore_errors=True)
        fresh.mkdir(parents=True)
    credentials = S3Credentials(access_key="mlcycle", secret_key=secrets.token_urlsafe(24))
    write_private(credentials_file(paths), credentials)
    admin = MlflowAdmin(password=secrets.token_urlsafe(24))
    write_private(mlflow_admin_file(paths), admin)

    s3_port, mlflow_port = processes.free_port(host_ip), processes.free_port(host_ip)
    state = ServicesState(
        s3_endpoint=f"http://{host_ip}:{s3_port}",
        mlflow_url=f"http://{host_ip}:{mlflow_port}",
        pids={},
    )
    minio_log = paths.logs / "minio.log"
    state.pids["minio"] = processes.start(
        [str(minio), "server", str(paths.root / "minio"), "--quiet",
         "--address", f"{host_ip}:{s3_port}",
         "--console-address", f"127.0.0.1:{processes.free_port()}"],
        minio_log,
        env={**os.environ, "MINIO_ROOT_USER": credentials.access_key,
             "MINIO_ROOT_PASSWORD": credentials.secret_key, "MINIO_BROWSER": "off"},
    )
    save(paths, state)
    processes.wait_healthy("minio", health_url(state, "minio"), state.pids["minio"], minio_log,
                           60)
    s3 = s3_client(state, credentials)
    for bucket in (MLFLOW_BUCKET, DATA_BUCKET):
        s3.create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
    progress(f"MinIO is serving S3 on {state.s3_endpoint}")

    backend = os.environ.get(BACKEND_URI_VARIABLE) or f"sqlite:///{paths.root / 'mlflow/mlflow.db'}"
    mlflow_log = paths.logs / "mlflow.log"
    auth_config = paths.root / "mlflow/basic_auth.ini"
    auth_config.write_text(AUTH_CONFIG.format(database=paths.root / "mlflow/auth.db",
                                              admin=admin.username))
    state.pids["mlflow"] = processes.start(
        [sys.executable, "-m", "mlflow", "server", "--app-name", "basic-auth",
         "--backend-store-uri", backend,
         "--artifacts-destination", f"s3://{MLFLOW_BUCKET}",
         "--host", host_ip, "--port", str(mlflow_port), "--workers", "1",
         "--allowed-hosts", f"{host_ip}:{mlflow_port},localhost:{mlflow_port},"
                            f"127.0.0.1:{mlflow_port}"],
        mlflow_log,
        env={**os.environ, **s3_environment(state, credentials),
             "MLFLOW_AUTH_CONFIG_PATH": str(auth_config),
             "MLFLOW_AUTH_ADMIN_PASSWORD": admin.password,
             "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_urlsafe(24)},
    )
    save(paths, state)
    processes.wait_healthy("mlflow", health_url(state, "mlflow"), state.pids["mlflow"],
                           mlflow_log, 120)
    progress(f"MLflow is serving on {state.mlflow_url} (UI and API)")
    return state


def _state_file(paths: LocalPaths) -> Path:
    return paths.root / "services.json"


def save(paths: LocalPaths, state: ServicesState) -> None:
    _state_file(paths).write_text(state.model_dump_json(indent=2))


def load_state(paths: LocalPaths) -> ServicesState | None:
    if not _state_file(paths).is_file():
        return None
    return ServicesState.model_validate_json(_state_file(paths).read_text())


def is_running(paths: LocalPaths, state: ServicesState | None) -> bool:
    if state is None:
        return False
    if state.release_namespace is not None:
        from localkube import chart_services  # it builds on this module

        return chart_services.is_running(paths)
    return all(processes.alive(pid) for pid in state.pids.values())


def outage(paths: LocalPaths, name: str, seconds: float) -> None:
    """`minio` or `mlflow` down for `seconds`, then back on its address with its data (the
    fault-injection suite's service faults)."""
    state = load_state(paths)
    assert state is not None, "no services run"
    if state.release_namespace is not None:
        from localkube import chart_services

        chart_services.outage(paths, state, name, seconds)
        return
    state.pids[name] = processes.outage(state.pids[name], paths.logs / f"{name}.log", seconds)
    save(paths, state)
    processes.wait_healthy(name, health_url(state, name), state.pids[name],
                           paths.logs / f"{name}.log", 120)


def down(paths: LocalPaths, progress: build.Progress = build.say) -> None:
    state = load_state(paths)
    if state is None:
        return
    if state.release_namespace is not None:
        from localkube import chart_services

        chart_services.down(paths)
        progress(f"Deleting namespace {state.release_namespace} (MinIO and MLflow)")
    for name, pid in reversed(list(state.pids.items())):
        processes.stop(pid)
        progress(f"Stopped {name}")
    _state_file(paths).unlink(missing_ok=True)
