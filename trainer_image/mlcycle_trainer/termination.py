"""The container's termination message: a typed result (`mlcycle_contract.results`) as compact
JSON of at most `TERMINATION_MESSAGE_LIMIT` bytes.

The kubelet truncates longer messages, which would leave the operator unparseable JSON; so
a result that does not fit is shrunk, least important parts first, and says so with
`"truncated": true`. The full details live in S3 and MLflow.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from mlcycle_contract.environment import TERMINATION_MESSAGE_LIMIT
from mlcycle_contract.results import (
    CommandResult,
    Failure,
    FailureResult,
    IngestionResult,
    TrainingResult,
)
from mlcycle_trainer.logs import redact

logger = logging.getLogger(__name__)

MAX_ERROR_MESSAGE_CHARS = 2000


def encode(result: CommandResult) -> bytes:
    return redact(result.model_dump_json(by_alias=True, exclude_none=True)).encode("utf-8")


def failure(reason: str, message: str, field: str | None = None) -> FailureResult:
    text = (
        message
        if len(message) <= MAX_ERROR_MESSAGE_CHARS
        else message[:MAX_ERROR_MESSAGE_CHARS] + "…"
    )
    return FailureResult(error=Failure(reason=reason, message=text, field=field))


def _drop_timings(result: CommandResult) -> CommandResult:
    if not isinstance(result, TrainingResult) or result.timings is None:
        return result
    return result.model_copy(update={"timings": None})


def _shrink_profile(result: CommandResult) -> CommandResult:
    if not isinstance(result, IngestionResult) or result.profile is None:
        return result
    profile = result.profile.model_copy(update={"warnings": result.profile.warnings[:1]})
    return result.model_copy(update={"profile": profile})


def _drop_failed_gates(result: CommandResult) -> CommandResult:
    if not isinstance(result, TrainingResult) or not result.gates.failed:
        return result
    gates = result.gates.model_copy(update={"failed": result.gates.failed[:1]})
    return result.model_copy(update={"gates": gates})


def _keep_headline_metrics(result: CommandResult) -> CommandResult:
    if not isinstance(result, TrainingResult):
        return result
    headline = {k: v for k, v in result.metrics.items() if not k.startswith(("cv_", "train_"))}
    return result.model_copy(update={"metrics": headline})


SHRINKERS: tuple[Callable[[CommandResult], CommandResult], ...] = (
    _drop_timings,
    _shrink_profile,
    _drop_failed_gates,
    _keep_headline_metrics,
)


def fit(result: CommandResult, limit: int = TERMINATION_MESSAGE_LIMIT) -> bytes:
    """The encoded result, shrunk until it fits in `limit` bytes."""
    encoded = encode(result)
    if len(encoded) <= limit:
        return encoded
    shrunk = result.model_copy(update={"truncated": True})
    for shrink in SHRINKERS:
        shrunk = shrink(shrunk)
        if len(encoded := encode(shrunk)) <= limit:
            return encoded
    while isinstance(shrunk, IngestionResult) and shrunk.schema_:
        shrunk = shrunk.model_copy(update={"schema_": shrunk.schema_[: len(shrunk.schema_) // 2]})
        if len(encoded := encode(shrunk)) <= limit:
            return encoded
    if isinstance(result, FailureResult):
        error = result.error
        return encode(failure(error.reason, error.message[: limit // 2], error.field))
    raise ValueError(f"termination message does not fit in {limit} bytes: {encoded[:200]!r}")


def write(path: str, result: CommandResult) -> int:
    """Write the result for the kubelet; returns its size. A missing file is only logged."""
    data = fit(result)
    try:
        with open(path, "wb") as sink:
            sink.write(data)
    except OSError as exc:
        logger.warning("Cannot write the termination message to %s: %s", path, exc.strerror)
    return len(data)
