"""The operator side of the operator <-> trainer contract.

The trainer image must not import the operator, and the operator must not import the
trainer, so each side spells the names once; `tests/unit/test_contract.py` checks that
this copy and `mlcycle_trainer.contract` agree.
"""

from __future__ import annotations

from typing import Final

COMMAND_INGEST: Final = "ingest"
COMMAND_TRAIN: Final = "train"

ENV_NAMESPACE: Final = "MLCYCLE_NAMESPACE"
ENV_OWNER_NAME: Final = "MLCYCLE_OWNER_NAME"
ENV_OWNER_UID: Final = "MLCYCLE_OWNER_UID"
ENV_IMAGE: Final = "MLCYCLE_IMAGE"
ENV_DATA_BUCKET: Final = "MLCYCLE_DATA_BUCKET"
ENV_S3_ENDPOINT: Final = "MLFLOW_S3_ENDPOINT_URL"
ENV_AWS_ENDPOINT: Final = "AWS_ENDPOINT_URL_S3"
ENV_ACCESS_KEY: Final = "AWS_ACCESS_KEY_ID"
ENV_SECRET_KEY: Final = "AWS_SECRET_ACCESS_KEY"
ENV_TRACKING_URI: Final = "MLFLOW_TRACKING_URI"
ENV_DATASET_SPEC: Final = "MLCYCLE_DATASET_SPEC"
ENV_TRAINING_SPEC: Final = "MLCYCLE_TRAINING_SPEC"
ENV_DATASET_NAME: Final = "MLCYCLE_DATASET_NAME"
ENV_DATASET_VERSION: Final = "MLCYCLE_DATASET_VERSION"
ENV_DATASET_URI: Final = "MLCYCLE_DATASET_URI"
ENV_DATASET_TARGET: Final = "MLCYCLE_DATASET_TARGET"
ENV_EXPERIMENT_NAME: Final = "MLFLOW_EXPERIMENT_NAME"

DEFAULT_TERMINATION_LOG: Final = "/dev/termination-log"
EXIT_INVALID_INPUT: Final = 2
KEY_ERROR: Final = "error"

# The model server (serving image): mirrors mlcycle_serving.contract.
ENV_MODEL_URI: Final = "MLCYCLE_MODEL_URI"
ENV_MODEL_NAME: Final = "MLCYCLE_MODEL_NAME"
ENV_PORT: Final = "PORT"
ENV_MAX_BATCH_SIZE: Final = "MLCYCLE_MAX_BATCH_SIZE"
ENV_MAX_BATCH_WAIT_MS: Final = "MLCYCLE_MAX_BATCH_WAIT_MS"
ENV_MODEL_DOWNLOAD_DIR: Final = "MLCYCLE_MODEL_DOWNLOAD_DIR"
SERVING_PORT: Final = 8080
SERVING_PORT_NAME: Final = "http"
LIVENESS_PATH: Final = "/v2/health/live"
READINESS_PATH: Final = "/v2/health/ready"
METRICS_PATH: Final = "/metrics"

# Tags the trainer sets on every registered model version: the runtime it was trained in.
TAG_RUNTIME_PYTHON: Final = "runtime.python"
TAG_RUNTIME_SKLEARN: Final = "runtime.sklearn"
TAG_RUNTIME_NUMPY: Final = "runtime.numpy"
ENV_SHUTDOWN_DELAY_SECONDS: Final = "MLCYCLE_SHUTDOWN_DELAY_SECONDS"
