"""The few calls of MLflow's tracking REST API a search worker makes, on `requests`: the
experiment, and runs created, logged to, ended, deleted and searched.

The `mlflow` package would make the same requests (the endpoints, methods and JSON bodies of
MLflow 3.17's RestStore, as MlflowClient fills them), but importing it takes about 3 s of a
worker's start (pandas, its data and GenAI modules) for a handful of JSON requests. The
`train` command, which logs models and artifacts, keeps using `mlflow` (`tracking`).

Like MLflow's client, every call reads the server and the credentials from
MLFLOW_TRACKING_URI, MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (Basic auth),
retries lost connections and 408, 429 and 5xx answers with MLflow's policy (7 times with
exponential backoff, honouring Retry-After: about 4 minutes), and sorts failures as
`tracking.tracking_errors` does: MLflow's permanent error codes are InvalidInput, the rest
Transient. No credential reaches an error or a log line.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util import Retry

from mlcycle_contract.environment import (
    MLFLOW_TRACKING_PASSWORD,
    MLFLOW_TRACKING_URI,
    MLFLOW_TRACKING_USERNAME,
)
from mlcycle_contract.mlflow_answers import API, TRANSIENT_STATUSES, answer_object
from mlcycle_contract.mlflow_answers import Credentials as Credentials
from mlcycle_contract.mlflow_answers import MlflowError as MlflowError
from mlcycle_trainer.environment import optional, required
from mlcycle_trainer.errors import (
    INVALID_ENVIRONMENT,
    TRACKING_UNAVAILABLE,
    InvalidInput,
    Transient,
)

TRACKING_REJECTED = "TrackingRejected"
MAX_PARAM_CHARS = 6000
# MLflow error codes that a retry will not change.
PERMANENT_CODES = frozenset({
    "INVALID_PARAMETER_VALUE",
    "RESOURCE_DOES_NOT_EXIST",
    "PERMISSION_DENIED",
    "UNAUTHENTICATED",
    "INVALID_STATE",
    "BAD_REQUEST",
})
# MLflow's client defaults (MLFLOW_HTTP_REQUEST_MAX_RETRIES, _BACKOFF_FACTOR, _BACKOFF_JITTER,
# _TIMEOUT) and the answers it retries (mlflow.utils.request_utils).
MAX_RETRIES = 7
BACKOFF_FACTOR = 2.0
BACKOFF_JITTER = 1.0
TIMEOUT_SECONDS = 120.0
# What one runs/log-batch request may carry (MLflow's client splits larger batches).
MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_ENTITIES_PER_BATCH = 1000
BODY_IN_ERRORS = 500  # characters of an answer quoted in an error
USER_UNKNOWN = "unknown"  # MlflowClient's user_id of a run without an mlflow.user tag
ACTIVE_ONLY = "ACTIVE_ONLY"


@contextmanager
def rest_errors(action: str) -> Iterator[None]:
    """MLflow's answers and lost connections as the trainer's errors (`tracking_errors`)."""
    try:
        yield
    except MlflowError as exc:
        message = f"MLflow {action} failed ({exc.error_code}): {exc.message[:BODY_IN_ERRORS]}"
        if exc.error_code in PERMANENT_CODES:
            raise InvalidInput(TRACKING_REJECTED, message) from exc
        raise Transient(TRACKING_UNAVAILABLE, message) from exc
    except requests.RequestException as exc:
        # Not chained: the exception holds the request, and with it its Authorization header.
        raise Transient(TRACKING_UNAVAILABLE,
                        f"MLflow {action} failed: {type(exc).__name__}: {exc}") from None


@dataclass(frozen=True)
class Metric:
    key: str
    value: float
    timestamp: int  # milliseconds since the epoch
    step: int


def _number(value: float) -> float | str:
    """A double as protobuf's JSON writes it: NaN and the infinities as strings."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _pairs(entries: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"key": key, "value": value} for key, value in entries.items()]


def _present(body: Mapping[str, Any]) -> dict[str, Any]:
    """The body without its empty lists, as protobuf's JSON leaves them out."""
    return {key: value for key, value in body.items() if value != []}


def mlflow_retry() -> Retry:
    """MLflow's client's retry policy (mlflow.utils.request_utils._get_request_session)."""
    return Retry(total=MAX_RETRIES, connect=MAX_RETRIES, read=MAX_RETRIES,
                 redirect=MAX_RETRIES, status=MAX_RETRIES, status_forcelist=TRANSIENT_STATUSES,
                 backoff_factor=BACKOFF_FACTOR, backoff_jitter=BACKOFF_JITTER,
                 raise_on_status=True, respect_retry_after_header=True, allowed_methods=None)


class MlflowRest:
    """MLflow's tracking API as one user. Safe to share between threads: each thread has its
    own session (its own connections)."""

    def __init__(self, tracking_uri: str, credentials: Credentials | None,
                 retry: Retry | None = None, timeout: float = TIMEOUT_SECONDS) -> None:
        if not tracking_uri.startswith(("http://", "https://")):
            raise InvalidInput(INVALID_ENVIRONMENT,
                               f"{MLFLOW_TRACKING_URI.name} is not an http(s) URL")
        self.tracking_uri = tracking_uri.rstrip("/")
        self._auth = None if credentials is None else (credentials.username,
                                                       credentials.password)
        self._retry = retry if retry is not None else mlflow_retry()
        self._timeout = timeout
        self._local = threading.local()

    @classmethod
    def from_environment(cls) -> MlflowRest:
        username, password = optional(MLFLOW_TRACKING_USERNAME), optional(MLFLOW_TRACKING_PASSWORD)
        return cls(required(MLFLOW_TRACKING_URI),
                   Credentials(username, password) if username and password else None)

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.trust_env = False  # no .netrc credentials or proxies beyond ours
            session.mount("http://", HTTPAdapter(max_retries=self._retry))
            session.mount("https://", HTTPAdapter(max_retries=self._retry))
            session.headers["User-Agent"] = "mlcycle-trainer"
            self._local.session = session
        return session

    def call(self, method: str, endpoint: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """A JSON call of the REST API (MLflow's call_endpoint): a GET sends `body` as the
        query, anything else as JSON; MlflowError unless the answer is 200 and JSON."""
        request: dict[str, Any] = {"params": body} if method == "GET" else {"json": body}
        response = self._session().request(method, f"{self.tracking_uri}{API}/{endpoint}",
                                           auth=self._auth, timeout=self._timeout, **request)
        return answer_object(response, endpoint)

    def experiment_by_name(self, name: str) -> dict[str, Any] | None:
        """The experiment (its id, lifecycle_stage, ...); None if there is none."""
        try:
            found = self.call("GET", "experiments/get-by-name", {"experiment_name": name})
        except MlflowError as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise
        experiment: dict[str, Any] = found.get("experiment") or {}
        return experiment

    def create_experiment(self, name: str) -> str:
        return str(self.call("POST", "experiments/create", {"name": name})["experiment_id"])

    def create_run(self, experiment_id: str, run_name: str, tags: Mapping[str, str],
                   start_time: int) -> str:
        """A running run; its id."""
        found = self.call("POST", "runs/create", _present({
            "experiment_id": experiment_id, "user_id": USER_UNKNOWN, "start_time": start_time,
            "tags": _pairs(tags), "run_name": run_name}))
        return str(found["run"]["info"]["run_id"])

    def log_batch(self, run_id: str, metrics: list[Metric], params: Mapping[str, str],
                  tags: Mapping[str, str]) -> None:
        """In as many requests as MLflow's limits take (MlflowClient splits them alike)."""
        metric_entries = [{"key": m.key, "value": _number(m.value), "timestamp": m.timestamp,
                           "step": m.step} for m in metrics]
        param_entries, tag_entries = _pairs(params), _pairs(tags)
        while metric_entries or param_entries or tag_entries:
            params_now = param_entries[:MAX_PARAMS_TAGS_PER_BATCH]
            tags_now = tag_entries[:MAX_PARAMS_TAGS_PER_BATCH]
            room = min(MAX_METRICS_PER_BATCH,
                       MAX_ENTITIES_PER_BATCH - len(params_now) - len(tags_now))
            metrics_now = metric_entries[:room]
            self.call("POST", "runs/log-batch", _present({
                "run_id": run_id, "metrics": metrics_now, "params": params_now,
                "tags": tags_now}))
            metric_entries = metric_entries[len(metrics_now):]
            param_entries = param_entries[len(params_now):]
            tag_entries = tag_entries[len(tags_now):]

    def update_run(self, run_id: str, status: str, end_time: int) -> None:
        """The run's end (MlflowClient.set_terminated)."""
        self.call("POST", "runs/update", {"run_uuid": run_id, "run_id": run_id,
                                          "status": status, "end_time": end_time})

    def delete_run(self, run_id: str) -> None:
        self.call("POST", "runs/delete", {"run_id": run_id})

    def search_runs(self, experiment_ids: list[str], filter_string: str,
                    max_results: int) -> list[dict[str, Any]]:
        """The active runs the filter selects (their `info`, `data` as MLflow answers), the
        first page only."""
        found = self.call("POST", "runs/search", {
            "experiment_ids": experiment_ids, "filter": filter_string,
            "run_view_type": ACTIVE_ONLY, "max_results": max_results})
        runs: list[dict[str, Any]] = found.get("runs") or []
        return runs
