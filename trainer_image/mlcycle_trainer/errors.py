"""The errors a command ends with: each carries a CamelCase reason and its exit code.

`InvalidInput` means retrying cannot help (the operator fails the Job at once);
`Transient` means a retry may succeed (storage or tracking server unreachable).
"""

from __future__ import annotations

from mlcycle_contract.environment import EXIT_INVALID_INPUT, EXIT_TRANSIENT

# Reasons of InvalidInput.
UNKNOWN_COMMAND = "UnknownCommand"
INVALID_ENVIRONMENT = "InvalidEnvironment"
INVALID_SPEC = "InvalidSpec"
SOURCE_UNREADABLE = "SourceUnreadable"
SOURCE_TOO_LARGE = "SourceTooLarge"
EMPTY_DATASET = "EmptyDataset"
INVALID_COLUMNS = "InvalidColumns"
TARGET_COLUMN_MISSING = "TargetColumnMissing"
FEATURE_COLUMN_MISSING = "FeatureColumnMissing"
NO_FEATURE_COLUMNS = "NoFeatureColumns"
SNAPSHOT_UNREADABLE = "SnapshotUnreadable"
INVALID_HYPERPARAMETER = "InvalidHyperparameter"
TARGET_UNSUITABLE = "TargetUnsuitable"
INVALID_SPLIT = "InvalidSplit"
FIT_FAILED = "FitFailed"
MODEL_NOT_SERIALIZABLE = "ModelNotSerializable"
ACCESS_DENIED = "AccessDenied"
# A url source resolves to an address the source policy refuses (loopback, link-local, the
# apiserver, the Service range, ...).
SOURCE_NOT_ALLOWED = "SourceNotAllowed"
# The snapshot no longer hashes to its dataset version; nothing is trained.
SNAPSHOT_CORRUPTED = "SnapshotCorrupted"
# An s3 source outside what the namespace's own storage user may read (MinIO's policy said no).
SOURCE_ACCESS_DENIED = "SourceAccessDenied"

# Reasons of Transient.
STORAGE_UNAVAILABLE = "StorageUnavailable"
SOURCE_UNAVAILABLE = "SourceUnavailable"
TRACKING_UNAVAILABLE = "TrackingUnavailable"
TERMINATED = "Terminated"  # SIGTERM: the pod is being stopped

# Anything unexpected: a bug, reported as such (exit 1, the Job's backoffLimit applies).
INTERNAL_ERROR = "InternalError"


class TrainerError(Exception):
    """A failure with a reason for the operator, a message for the user and, when one input
    is to blame, its path (`spec.target`)."""

    exit_code: int = EXIT_INVALID_INPUT

    def __init__(self, reason: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.field = field


class InvalidInput(TrainerError):
    """The spec, the data or the environment is wrong; retrying cannot help."""

    exit_code = EXIT_INVALID_INPUT


class Transient(TrainerError):
    """A service did not answer; a retry may succeed."""

    exit_code = EXIT_TRANSIENT


class Terminated(BaseException):
    """The pod is being stopped (SIGTERM); a BaseException, so no `except Exception` in a
    library swallows it on the way out."""

    exit_code = EXIT_TRANSIENT
    reason = TERMINATED
    field = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def name_list(names: list[str], limit: int = 30) -> str:
    """`a, b, c` for an error message, cut after `limit` names."""
    shown = ", ".join(names[:limit])
    more = len(names) - limit
    return f"{shown}, ... and {more} more" if more > 0 else shown
