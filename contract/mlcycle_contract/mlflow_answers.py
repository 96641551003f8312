"""MLflow's REST answers read as its own client reads them (mlflow.utils.rest_utils:
verify_rest_response and call_endpoint), for the two clients that speak the REST API without
the `mlflow` package: the operator's (`mlcycle.mlflow_api`, on httpx) and the search
worker's (`mlcycle_trainer.mlflow_rest`, on requests). Both answer types fit `Answer`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

API = "/api/2.0/mlflow"
# The answers MLflow's client retries (mlflow.utils.request_utils).
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# MLflow's error code for an answer that is not its JSON error (the basic-auth app answers
# 401 and 403 in plain text): mlflow.exceptions.HTTP_STATUS_TO_ERROR_CODE.
STATUS_ERROR_CODES = {400: "BAD_REQUEST", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                      404: "ENDPOINT_NOT_FOUND", 409: "RESOURCE_CONFLICT",
                      429: "REQUEST_LIMIT_EXCEEDED", 499: "CANCELLED", 500: "INTERNAL_ERROR",
                      501: "NOT_IMPLEMENTED", 503: "TEMPORARILY_UNAVAILABLE",
                      504: "DEADLINE_EXCEEDED"}
INTERNAL_ERROR = "INTERNAL_ERROR"
BODY_IN_ERRORS = 300  # characters of a non-JSON answer quoted in an error


class Answer(Protocol):
    """An HTTP answer: httpx's and requests' Response both fit."""

    @property
    def status_code(self) -> int: ...

    @property
    def text(self) -> str: ...

    def json(self) -> Any: ...


class MlflowError(Exception):
    """MLflow refused or failed a request: `error_code` is MLflow's (RESOURCE_DOES_NOT_EXIST,
    PERMISSION_DENIED, ...), or the one its client derives from the HTTP status."""

    def __init__(self, message: str, error_code: str = INTERNAL_ERROR) -> None:
        super().__init__(message)
        self.message, self.error_code = message, error_code


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)


def answer_error(response: Answer, endpoint: str) -> MlflowError:
    """An answer other than 200: MLflow's JSON error, else a code from the HTTP status."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        code = str(body.get("error_code") or INTERNAL_ERROR)
        if code.isdigit():
            code = STATUS_ERROR_CODES.get(int(code), INTERNAL_ERROR)
        detail = body.get("message", f"Response: {body}")
        return MlflowError(f"{code}: {detail}", code)
    code = STATUS_ERROR_CODES.get(response.status_code, INTERNAL_ERROR)
    return MlflowError(f"API request to endpoint {endpoint} failed with error code "
                       f"{response.status_code} != 200. Response body: "
                       f"'{response.text[:BODY_IN_ERRORS]}'", code)


def answer_object(response: Answer, endpoint: str) -> dict[str, Any]:
    """The JSON object of a 200 answer ({} for an empty body); MlflowError otherwise."""
    if response.status_code != 200:
        raise answer_error(response, endpoint)
    if not response.text.strip():
        return {}
    try:
        found = response.json()
    except ValueError:
        found = None
    if not isinstance(found, dict):
        raise MlflowError(f"API request to endpoint {endpoint} was successful but the "
                          "response body was not in a valid JSON format")
    return found
