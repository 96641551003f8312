"""The container's termination message: compact JSON of at most 4096 bytes.

The kubelet truncates longer messages, which would leave the operator unparseable JSON; so
a message that does not fit is shrunk, least important parts first, and says so with
`"truncated": true`. The full details live in S3 and MLflow.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from mlcycle_trainer.contract import KEY_ERROR, TERMINATION_MESSAGE_LIMIT
from mlcycle_trainer.logs import redact

logger = logging.getLogger(__name__)

Message = dict[str, Any]
MAX_ERROR_MESSAGE_CHARS = 2000


def encode(message: Message) -> bytes:
    return redact(json.dumps(message, separators=(",", ":"), allow_nan=False)).encode("utf-8")


def error_message(reason: str, message: str) -> Message:
    text = (
        message
        if len(message) <= MAX_ERROR_MESSAGE_CHARS
        else message[:MAX_ERROR_MESSAGE_CHARS] + "…"
    )
    return {KEY_ERROR: {"reason": reason, "message": text}}


def _shrink_profile(message: Message) -> Message:
    profile = message.get("profile")
    if not isinstance(profile, dict):
        return message
    return {**message, "profile": {**profile, "warnings": profile.get("warnings", [])[:1]}}


def _halve_schema(message: Message) -> Message:
    schema = message.get("schema")
    if isinstance(schema, list) and schema:
        return {**message, "schema": schema[: len(schema) // 2]}
    return message


def _keep_headline_metrics(message: Message) -> Message:
    metrics = message.get("metrics")
    if not isinstance(metrics, dict):
        return message
    headline = {k: v for k, v in metrics.items() if not k.startswith(("cv_", "train_"))}
    return {**message, "metrics": headline}


def _drop_failed_gates(message: Message) -> Message:
    gates = message.get("gates")
    if isinstance(gates, dict) and gates.get("failed"):
        return {**message, "gates": {**gates, "failed": gates["failed"][:1]}}
    return message


SHRINKERS: tuple[Callable[[Message], Message], ...] = (
    _shrink_profile,
    _drop_failed_gates,
    _keep_headline_metrics,
)


def fit(message: Message, limit: int = TERMINATION_MESSAGE_LIMIT) -> bytes:
    """The encoded message, shrunk until it fits in `limit` bytes."""
    encoded = encode(message)
    if len(encoded) <= limit:
        return encoded
    shrunk = {**message, "truncated": True}
    for shrink in SHRINKERS:
        shrunk = shrink(shrunk)
        if len(encoded := encode(shrunk)) <= limit:
            return encoded
    while isinstance(shrunk.get("schema"), list) and shrunk["schema"]:
        shrunk = _halve_schema(shrunk)
        if len(encoded := encode(shrunk)) <= limit:
            return encoded
    if KEY_ERROR in message:
        error = message[KEY_ERROR]
        return encode(error_message(error["reason"], error["message"][: limit // 2]))
    raise ValueError(f"termination message does not fit in {limit} bytes: {encoded[:200]!r}")


def write(path: str, message: Message) -> int:
    """Write the message for the kubelet; returns its size. A missing file is only logged."""
    data = fit(message)
    try:
        with open(path, "wb") as sink:
            sink.write(data)
    except OSError as exc:
        logger.warning("Cannot write the termination message to %s: %s", path, exc.strerror)
    return len(data)
