"""The environment-variable contract between the operator and the model server.

Written down once, here: the operator builds the serving container's environment from
these names, and a test on each side checks that both agree. Values are strings, as
in a container spec; an empty default means "unset" (the server derives a value).
This module must stay import-free: the operator imports it without the model runtime.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class EnvVar:
    """One environment variable the model server reads."""

    name: str
    default: str
    description: str


MODEL_URI = EnvVar(
    "MLCYCLE_MODEL_URI",
    "",
    "Model to serve: models:/<name>/<version>, models:/<name>@<alias>, runs:/..., or a "
    "local path. Required. An alias is resolved to a version once, at start-up.",
)
MODEL_NAME = EnvVar(
    "MLCYCLE_MODEL_NAME",
    "",
    "Name of the model in URLs (/v2/models/<name>/infer). Default: the registered "
    "model name from the URI, else 'model'.",
)
HOST = EnvVar("HOST", "0.0.0.0", "Address the HTTP server binds to.")
PORT = EnvVar("PORT", "8080", "Port the HTTP server listens on.")
MAX_BATCH_SIZE = EnvVar(
    "MLCYCLE_MAX_BATCH_SIZE",
    "64",
    "Most rows merged into one predict call (a single larger request is never split).",
)
MAX_BATCH_WAIT_MS = EnvVar(
    "MLCYCLE_MAX_BATCH_WAIT_MS",
    "2",
    "Longest wait, in milliseconds, for more requests once others are queued; an idle "
    "queue never waits. 0 disables waiting (batches form only from queued requests).",
)
MAX_BODY_BYTES = EnvVar(
    "MLCYCLE_MAX_BODY_BYTES",
    str(8 * 1024 * 1024),
    "Largest request body accepted; larger bodies get 413 without being read.",
)
MODEL_DOWNLOAD_DIR = EnvVar(
    "MLCYCLE_MODEL_DOWNLOAD_DIR",
    "",
    "Directory the model's artifacts are downloaded into at start-up. Default: a new "
    "temporary directory (mount an emptyDir there under a read-only root filesystem).",
)
SHUTDOWN_DELAY_SECONDS = EnvVar(
    "MLCYCLE_SHUTDOWN_DELAY_SECONDS",
    "5",
    "After SIGTERM, keep serving this long while readiness reports 503, so endpoints "
    "drop the pod before it stops accepting (a built-in preStop sleep); then drain.",
)
LOG_LEVEL = EnvVar("MLCYCLE_LOG_LEVEL", "INFO", "Log level of the JSON logs.")
ACCESS_LOG = EnvVar(
    "MLCYCLE_ACCESS_LOG", "false", "Log one JSON line per request ('true' or 'false')."
)

# Standard variables read by MLflow and boto3 themselves; listed so the operator sets
# them by these names. Credentials come from Secrets, never from the resource spec.
MLFLOW_TRACKING_URI = EnvVar(
    "MLFLOW_TRACKING_URI", "", "MLflow tracking server and registry (for models:/ URIs)."
)
MLFLOW_S3_ENDPOINT_URL = EnvVar(
    "MLFLOW_S3_ENDPOINT_URL", "", "S3 endpoint of the artifact store (MinIO), if not AWS."
)
AWS_ACCESS_KEY_ID = EnvVar("AWS_ACCESS_KEY_ID", "", "S3 access key (from a Secret).")
AWS_SECRET_ACCESS_KEY = EnvVar("AWS_SECRET_ACCESS_KEY", "", "S3 secret key (from a Secret).")
AWS_ENDPOINT_URL_S3 = EnvVar(
    "AWS_ENDPOINT_URL_S3",
    "",
    "S3 endpoint for boto3 itself (same value as MLFLOW_S3_ENDPOINT_URL).",
)

SERVER_SETTINGS: tuple[EnvVar, ...] = (
    MODEL_URI,
    MODEL_NAME,
    HOST,
    PORT,
    MAX_BATCH_SIZE,
    MAX_BATCH_WAIT_MS,
    MAX_BODY_BYTES,
    MODEL_DOWNLOAD_DIR,
    SHUTDOWN_DELAY_SECONDS,
    LOG_LEVEL,
    ACCESS_LOG,
)
"""Variables the server itself parses (mlcycle_serving.settings)."""

PASS_THROUGH: tuple[EnvVar, ...] = (
    MLFLOW_TRACKING_URI,
    MLFLOW_S3_ENDPOINT_URL,
    AWS_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY,
    AWS_ENDPOINT_URL_S3,
)
"""Variables read by MLflow and boto3 inside the server."""

ALL_ENV_VARS: tuple[EnvVar, ...] = SERVER_SETTINGS + PASS_THROUGH

DEFAULTS: dict[str, str] = {var.name: var.default for var in ALL_ENV_VARS}
"""Name -> default value, for the operator and the agreement test."""

# The same names as flat constants, spelled like the operator's copy in
# `mlcycle.contract`, so the agreement test compares constants by name.
ENV_MODEL_URI: Final = MODEL_URI.name
ENV_MODEL_NAME: Final = MODEL_NAME.name
ENV_HOST: Final = HOST.name
ENV_PORT: Final = PORT.name
ENV_MAX_BATCH_SIZE: Final = MAX_BATCH_SIZE.name
ENV_MAX_BATCH_WAIT_MS: Final = MAX_BATCH_WAIT_MS.name
ENV_MAX_BODY_BYTES: Final = MAX_BODY_BYTES.name
ENV_MODEL_DOWNLOAD_DIR: Final = MODEL_DOWNLOAD_DIR.name
ENV_SHUTDOWN_DELAY_SECONDS: Final = SHUTDOWN_DELAY_SECONDS.name
ENV_LOG_LEVEL: Final = LOG_LEVEL.name
ENV_ACCESS_LOG: Final = ACCESS_LOG.name
ENV_TRACKING_URI: Final = MLFLOW_TRACKING_URI.name
ENV_S3_ENDPOINT: Final = MLFLOW_S3_ENDPOINT_URL.name
ENV_AWS_ENDPOINT: Final = AWS_ENDPOINT_URL_S3.name
ENV_ACCESS_KEY: Final = AWS_ACCESS_KEY_ID.name
ENV_SECRET_KEY: Final = AWS_SECRET_ACCESS_KEY.name

SERVING_PORT: Final = int(PORT.default)
SERVING_PORT_NAME: Final = "http"
"""The serving container's port and its name."""

LIVENESS_PATH: Final = "/v2/health/live"
READINESS_PATH: Final = "/v2/health/ready"
METRICS_PATH: Final = "/metrics"
"""Paths the operator wires into probes and scrape annotations."""

TAG_RUNTIME_PREFIX: Final = "runtime."
TAG_RUNTIME_PYTHON: Final = "runtime.python"
TAG_RUNTIME_SKLEARN: Final = "runtime.sklearn"
TAG_RUNTIME_NUMPY: Final = "runtime.numpy"
"""Tags/params the trainer records on the run and model version; read at start-up."""
