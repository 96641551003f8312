"""The trainer side of the operator <-> trainer contract.

The operator starts the trainer image as `python -m mlcycle_trainer <command>` with these
environment variables, and reads back the JSON that the trainer writes to the container's
termination-message file. The operator keeps its own copy of the names (it must not import
this package); a test checks that both copies agree.
"""

from __future__ import annotations

from typing import Final

# Commands (the container's first argument).
COMMAND_INGEST: Final = "ingest"
COMMAND_TRAIN: Final = "train"

# Set for every command.
ENV_NAMESPACE: Final = "MLCYCLE_NAMESPACE"
ENV_OWNER_NAME: Final = "MLCYCLE_OWNER_NAME"  # the Dataset or TrainingJob
ENV_OWNER_UID: Final = "MLCYCLE_OWNER_UID"
ENV_IMAGE: Final = "MLCYCLE_IMAGE"  # the image this pod runs, recorded as lineage
ENV_DATA_BUCKET: Final = "MLCYCLE_DATA_BUCKET"  # dataset snapshots live here
ENV_TERMINATION_LOG: Final = "MLCYCLE_TERMINATION_LOG"  # default /dev/termination-log
# Standard variables, read by boto3 and MLflow themselves; the two credentials come from
# a Secret through secretKeyRef, never from a custom resource.
ENV_S3_ENDPOINT: Final = "MLFLOW_S3_ENDPOINT_URL"
ENV_AWS_ENDPOINT: Final = "AWS_ENDPOINT_URL_S3"
ENV_ACCESS_KEY: Final = "AWS_ACCESS_KEY_ID"
ENV_SECRET_KEY: Final = "AWS_SECRET_ACCESS_KEY"
ENV_TRACKING_URI: Final = "MLFLOW_TRACKING_URI"

# `ingest`: the Dataset spec as JSON (camelCase, as in the custom resource).
ENV_DATASET_SPEC: Final = "MLCYCLE_DATASET_SPEC"

# `train`: the TrainingJob spec as JSON, and the resolved dataset it trains on.
ENV_TRAINING_SPEC: Final = "MLCYCLE_TRAINING_SPEC"
ENV_DATASET_NAME: Final = "MLCYCLE_DATASET_NAME"
ENV_DATASET_VERSION: Final = "MLCYCLE_DATASET_VERSION"
ENV_DATASET_URI: Final = "MLCYCLE_DATASET_URI"
ENV_DATASET_TARGET: Final = "MLCYCLE_DATASET_TARGET"
ENV_EXPERIMENT_NAME: Final = "MLFLOW_EXPERIMENT_NAME"

DEFAULT_TERMINATION_LOG: Final = "/dev/termination-log"
TERMINATION_MESSAGE_LIMIT: Final = 4096  # bytes; the kubelet truncates beyond this

# Exit codes. The operator's Jobs fail at once (podFailurePolicy) on EXIT_INVALID_INPUT:
# retrying cannot fix a missing column or an unknown hyperparameter.
EXIT_OK: Final = 0
EXIT_INVALID_INPUT: Final = 2
EXIT_TRANSIENT: Final = 3
# Anything unexpected (a bug): the message has reason "InternalError"; the Job's backoffLimit
# decides whether it is retried.
EXIT_INTERNAL_ERROR: Final = 1

# Keys of the termination-message JSON.
# ingest success: {"version", "snapshotURI", "rows", "columns", "schema": [{"name", "dtype"}],
#                  "profile": {...}}
# train success:  {"metrics": {name: float}, "fitSeconds", "model": {"name", "version", "uri"},
#                  "mlflow": {"runId", "experimentId"}, "runtime": {"python", "sklearn", "numpy"}}
# any failure:    {"error": {"reason": "CamelCase", "message": "names the field and problem"}}
# Also sent: ingest "profile": {"topFeatures": [{"name", "importance"}], "warnings": [str],
# "reportURI"} (only when profiling is enabled); train "gates": {"passed", "failed": [str]},
# "objective": {"metric", "value"}, "datasetVersion", and "alias": {"name", "moved"} when
# spec.registry.alias is set. A message shrunk to fit the limit carries "truncated": true.
KEY_ERROR: Final = "error"

# Tags the trainer sets on the MLflow run and on every registered model version: the runtime
# the model was trained in (the model server compares them with its own) and lineage.
TAG_RUNTIME_PYTHON: Final = "runtime.python"
TAG_RUNTIME_SKLEARN: Final = "runtime.sklearn"
TAG_RUNTIME_NUMPY: Final = "runtime.numpy"
TAG_RUNTIME_MLFLOW: Final = "runtime.mlflow"
TAG_DATASET_NAME: Final = "mlcycle.dataset.name"
TAG_DATASET_VERSION: Final = "mlcycle.dataset.version"
TAG_TRAININGJOB_UID: Final = "mlcycle.trainingjob.uid"
TAG_GATES_PASSED: Final = "mlcycle.gates.passed"  # "true" or "false"
