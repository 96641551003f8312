"""Errors the server answers with, and the one place that maps them to HTTP.

Everything a request can get wrong raises a `ServingError` subclass carrying its
status code; `error_status_and_body` turns any exception into the status and the
`{"error": "..."}` body. Unexpected exceptions become 500 without internals.
"""

from __future__ import annotations

import orjson


class ServingError(Exception):
    """An error with a message meant for the client."""

    status_code: int = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInput(ServingError):
    """The request body does not fit the protocol or the model's signature."""

    status_code = 400


class NotFound(ServingError):
    """Unknown route or model name."""

    status_code = 404


class MethodNotAllowed(ServingError):
    status_code = 405

    def __init__(self, message: str, allowed: tuple[str, ...]) -> None:
        super().__init__(message)
        self.allowed = allowed


class PayloadTooLarge(ServingError):
    status_code = 413


class ModelNotReady(ServingError):
    """The model is still loading (or failed to load)."""

    status_code = 503


class PredictionFailed(ServingError):
    """The model raised while predicting valid-looking input."""

    status_code = 500


INTERNAL_ERROR_MESSAGE = "internal server error"


def error_status_and_body(exc: BaseException) -> tuple[int, bytes]:
    """Map any exception to an HTTP status and a JSON error body."""
    if isinstance(exc, ServingError):
        return exc.status_code, orjson.dumps({"error": exc.message})
    return 500, orjson.dumps({"error": INTERNAL_ERROR_MESSAGE})
