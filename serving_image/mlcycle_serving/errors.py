"""Errors the server answers with, and the one place that maps them to HTTP.

Everything a request can get wrong raises a `ServingError` subclass carrying its
status code and any headers the answer needs; `error_answer` turns any exception into
the status, the `{"error": "..."}` body and the headers. Unexpected exceptions become
500 without internals.
"""

from __future__ import annotations

import orjson

Headers = tuple[tuple[bytes, bytes], ...]


class ServingError(Exception):
    """An error with a message meant for the client."""

    status_code: int = 500
    headers: Headers = ()

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
        self.headers = ((b"allow", ", ".join(allowed).encode()),)


class Conflict(ServingError):
    """The resource exists but is not in the state the request needs (drift monitoring off
    or without a reference)."""

    status_code = 409


class PayloadTooLarge(ServingError):
    status_code = 413
    headers = ((b"connection", b"close"),)  # the body was left unread: no reuse


class ModelNotReady(ServingError):
    """The model is still loading (or failed to load)."""

    status_code = 503


class PredictionFailed(ServingError):
    """The model raised while predicting valid-looking input."""

    status_code = 500


INTERNAL_ERROR_MESSAGE = "internal server error"


def error_answer(exc: BaseException) -> tuple[int, bytes, Headers]:
    """Map any exception to an HTTP status, a JSON error body and the headers it needs."""
    if isinstance(exc, ServingError):
        return exc.status_code, orjson.dumps({"error": exc.message}), exc.headers
    return 500, orjson.dumps({"error": INTERNAL_ERROR_MESSAGE}), ()
