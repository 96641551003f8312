"""The environment contract: what the operator hands its Jobs and model servers, and how they
answer.

The operator sets these variables and runs these commands; the trainer image
(`python -m mlcycle_trainer <command>`) and the model server read them and reply with an exit
code and a termination message (`mlcycle_contract.results`). Values are strings, as in a
container spec; an empty default means "unset".
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class EnvVar:
    """One environment variable a program of mlcycle reads."""

    name: str
    default: str
    description: str


# Standard variables, read by boto3 and MLflow themselves. The credentials come from the
# namespace's Secret through secretKeyRef, never from a custom resource.
MLFLOW_TRACKING_URI = EnvVar(
    "MLFLOW_TRACKING_URI", "", "MLflow tracking server and registry (for models:/ URIs)."
)
MLFLOW_S3_ENDPOINT_URL = EnvVar(
    "MLFLOW_S3_ENDPOINT_URL", "", "S3 endpoint of the artifact store (MinIO), if not AWS."
)
AWS_ENDPOINT_URL_S3 = EnvVar(
    "AWS_ENDPOINT_URL_S3",
    "",
    "S3 endpoint for boto3 itself (same value as MLFLOW_S3_ENDPOINT_URL).",
)
AWS_ACCESS_KEY_ID = EnvVar("AWS_ACCESS_KEY_ID", "", "S3 access key (from a Secret).")
AWS_SECRET_ACCESS_KEY = EnvVar("AWS_SECRET_ACCESS_KEY", "", "S3 secret key (from a Secret).")
MLFLOW_TRACKING_USERNAME = EnvVar(
    "MLFLOW_TRACKING_USERNAME", "", "The namespace's MLflow user (from a Secret)."
)
MLFLOW_TRACKING_PASSWORD = EnvVar(
    "MLFLOW_TRACKING_PASSWORD", "", "The namespace's MLflow password (from a Secret)."
)
MLFLOW_EXPERIMENT_NAME = EnvVar(
    "MLFLOW_EXPERIMENT_NAME", "mlcycle", "MLflow experiment of a training run."
)
MLFLOW_ALLOW_PICKLE_DESERIALIZATION = EnvVar(
    "MLFLOW_ALLOW_PICKLE_DESERIALIZATION",
    "false",
    "Serving Pods: MLflow's own loaders refuse pickle and cloudpickle (the server loads skops "
    "files only, without them).",
)

# --- The trainer image: `ingest` and `train` Jobs --------------------------------------------

COMMAND_INGEST: Final = "ingest"
COMMAND_TRAIN: Final = "train"
COMMAND_SEARCH: Final = "search"
"""The trainer container's only argument."""

NAMESPACE = EnvVar("MLCYCLE_NAMESPACE", "default", "Namespace of the owning custom resource.")
OWNER_NAME = EnvVar("MLCYCLE_OWNER_NAME", "", "The Dataset or TrainingJob. Required.")
OWNER_UID = EnvVar("MLCYCLE_OWNER_UID", "", "Its uid, recorded as lineage.")
IMAGE = EnvVar("MLCYCLE_IMAGE", "", "The image the pod runs, recorded as lineage.")
DATA_BUCKET = EnvVar("MLCYCLE_DATA_BUCKET", "", "Bucket of the dataset snapshots. Required.")
TERMINATION_LOG = EnvVar(
    "MLCYCLE_TERMINATION_LOG",
    "/dev/termination-log",
    "File the result is written to; the container's terminationMessagePath.",
)
DATASET_SPEC = EnvVar(
    "MLCYCLE_DATASET_SPEC", "", "`ingest`: the Dataset spec as JSON (camelCase). Required."
)
SOURCE_DENY_CIDRS = EnvVar(
    "MLCYCLE_SOURCE_DENY_CIDRS",
    "",
    "`ingest`: networks a url source must not resolve to (comma-separated CIDRs or "
    "addresses), besides the loopback, link-local, unspecified, multicast and reserved ones, "
    "which are always refused. The operator sets the Service range and the apiserver.",
)
SOURCE_ALLOW_CIDRS = EnvVar(
    "MLCYCLE_SOURCE_ALLOW_CIDRS",
    "",
    "`ingest`: networks a url source may resolve to although refused otherwise; only what "
    "is listed here (comma-separated CIDRs or addresses).",
)
SOURCE_VALIDATORS = EnvVar(
    "MLCYCLE_SOURCE_VALIDATORS",
    "",
    "`ingest` as a refresh check (spec.refreshInterval): the source's ETag and Last-Modified "
    "from its last download, as JSON (the Dataset's status.source); an unchanged source is "
    "not downloaded. Empty: download unconditionally.",
)
TRAINING_SPEC = EnvVar(
    "MLCYCLE_TRAINING_SPEC", "", "`train`: the TrainingJob spec as JSON (camelCase). Required."
)
DATASET_NAME = EnvVar("MLCYCLE_DATASET_NAME", "", "`train`: the Dataset trained on. Required.")
DATASET_VERSION = EnvVar(
    "MLCYCLE_DATASET_VERSION", "", "`train`: the pinned dataset version. Required."
)
DATASET_URI = EnvVar("MLCYCLE_DATASET_URI", "", "`train`: that version's snapshot. Required.")
DATASET_TARGET = EnvVar("MLCYCLE_DATASET_TARGET", "", "`train`: the target column. Required.")
DATASET_SPLIT = EnvVar(
    "MLCYCLE_DATASET_SPLIT",
    "{}",
    "`train`: the Dataset's spec.split as JSON: the holdout's fraction, seed and stratification.",
)
SEARCH_STUDY = EnvVar(
    "MLCYCLE_SEARCH_STUDY", "", "`search`: the study's name, shared by its workers. Required."
)
SEARCH_STUDY_URI = EnvVar(
    "MLCYCLE_SEARCH_STUDY_URI",
    "",
    "`search`: s3:// prefix of the study: its Optuna journal, MLflow parent run and worker "
    "heartbeats. Required.",
)
SEARCH_DEADLINE = EnvVar(
    "MLCYCLE_SEARCH_DEADLINE",
    "",
    "`search`: ISO 8601 time after which no trial starts (spec.search.timeout from the "
    "search's start); empty for none.",
)
JOB_COMPLETION_INDEX = EnvVar(
    "JOB_COMPLETION_INDEX", "0", "`search`: the worker's index, set by Kubernetes (Indexed Job)."
)

TERMINATION_MESSAGE_LIMIT: Final = 4096
"""Bytes; the kubelet truncates a longer termination message."""

EXIT_OK: Final = 0
EXIT_INTERNAL_ERROR: Final = 1
"""A bug; the Job's backoffLimit decides whether it is retried."""
EXIT_INVALID_INPUT: Final = 2
"""Retrying cannot fix a missing column or an unknown hyperparameter: the Job fails at once."""
EXIT_TRANSIENT: Final = 3
"""Storage or tracking unreachable, or the pod stopped: a retry may succeed."""

# --- The model server ----------------------------------------------------------------------

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
WORKERS = EnvVar(
    "MLCYCLE_WORKERS",
    "1",
    "Server processes sharing the port, each with its own model and batcher (1 to 16); "
    "ModelDeployment spec.serving.workers.",
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
    WORKERS,
)
"""Variables the server itself parses (mlcycle_serving.settings)."""

SERVING_PORT: Final = int(PORT.default)
SERVING_PORT_NAME: Final = "http"
LIVENESS_PATH: Final = "/v2/health/live"
READINESS_PATH: Final = "/v2/health/ready"
METRICS_PATH: Final = "/metrics"
"""The serving container's port, and the paths of its probes and Prometheus scrape."""

# --- Tags the trainer sets on the MLflow run and the registered model version ---------------

TAG_RUNTIME_PREFIX: Final = "runtime."
"""The runtime a model was trained in, `runtime.<key>` (results.Runtime has the keys)."""
TAG_DATASET_NAME: Final = "mlcycle.dataset.name"
TAG_DATASET_VERSION: Final = "mlcycle.dataset.version"
TAG_TRAININGJOB_UID: Final = "mlcycle.trainingjob.uid"
TAG_GATES_PASSED: Final = "mlcycle.gates.passed"
"""`true` or `false`."""

# A search's runs: one parent per study, one child per trial (the operator reads them back).
TAG_SEARCH_STUDY: Final = "mlcycle.search.study"
TAG_SEARCH_ROLE: Final = "mlcycle.search.role"
"""`parent` or `trial`."""
TAG_TRIAL_NUMBER: Final = "mlcycle.trial.number"
TAG_TRIAL_ALGORITHM: Final = "mlcycle.trial.algorithm"
TAG_TRIAL_STATE: Final = "mlcycle.trial.state"
"""A `TrialState` value: Running, Complete, Pruned or Failed."""
TAG_TRIAL_ERROR: Final = "mlcycle.trial.error"
"""`<Reason>: <message>` of a failed trial."""


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(value: str) -> tuple[IPNetwork, ...]:
    """Comma-separated CIDRs or addresses (an address is a /32 or /128), as SOURCE_DENY_CIDRS
    and SOURCE_ALLOW_CIDRS hold them; a ValueError names the entry that is neither."""
    return tuple(ipaddress.ip_network(item.strip()) for item in value.split(",") if item.strip())


def runtime_tag(key: str) -> str:
    """The tag recording one runtime component: `sklearn` -> `runtime.sklearn`."""
    return TAG_RUNTIME_PREFIX + key
