"""The few calls of MLflow's REST API the operator makes, on httpx: the model registry, the
runs of an experiment, the artifact proxy (`mlflow-artifacts:`) and the basic-auth app's users.

The `mlflow` package would make the same requests (these are the endpoints, methods and JSON
shapes of MLflow 3.17's RestStore, HttpArtifactRepository and auth client), but importing it
loads pandas, pyarrow, scipy and most of MLflow: about 120 MiB of the operator's memory for a
handful of JSON requests.

Every call sends Basic credentials (the operator's own, `MLFLOW_TRACKING_USERNAME` /
`MLFLOW_TRACKING_PASSWORD`, or a namespace's user), retries what MLflow's client retries (lost
connections and 408, 429, 5xx answers) a few times within seconds, and raises `MlflowError`
with MLflow's error code otherwise. Neither credentials nor URLs with them reach an error.
"""

from __future__ import annotations

import mimetypes
import os
import posixpath
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx

from mlcycle_contract.mlflow_answers import (
    API,
    TRANSIENT_STATUSES,
    answer_error,
    answer_object,
)
from mlcycle_contract.mlflow_answers import Credentials as Credentials
from mlcycle_contract.mlflow_answers import MlflowError as MlflowError

ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
ARTIFACTS_SCHEME = "mlflow-artifacts"
TIMEOUT = httpx.Timeout(30.0, connect=5.0)
# MLflow's client retries TRANSIENT_STATUSES 7 times over about 4 minutes, which would hold a
# handler's thread that long; the handlers retry every 10 s anyway (kopf.TemporaryError).
RETRIES = 3
BACKOFF_SECONDS = 0.5  # then 1, 2
MAX_RETRY_AFTER_SECONDS = 5.0
ADMIN_USERNAME, ADMIN_PASSWORD = "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"
PROMPT_TAG = "mlflow.prompt.is_prompt"
T = TypeVar("T")


def admin_credentials() -> Credentials | None:
    """The operator's own MLflow user, from its environment (read at every call, as MLflow's
    client does); None without them."""
    username, password = os.environ.get(ADMIN_USERNAME, ""), os.environ.get(ADMIN_PASSWORD, "")
    return Credentials(username, password) if username and password else None


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: str
    run_id: str
    tags: dict[str, str]
    aliases: tuple[str, ...]


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    aliases: dict[str, str]  # alias -> version


@dataclass(frozen=True)
class Run:
    run_id: str
    experiment_id: str
    artifact_uri: str
    metrics: dict[str, float]  # the latest value of each
    params: dict[str, str]
    tags: dict[str, str]


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    token: str | None  # of the next page; None on the last


def _pairs(entries: Iterable[Mapping[str, Any]] | None, key: str = "key",
           value: str = "value") -> dict[str, str]:
    return {str(entry[key]): str(entry.get(value, "")) for entry in entries or []}


def model_version(found: Mapping[str, Any]) -> ModelVersion:
    return ModelVersion(name=str(found.get("name", "")), version=str(found.get("version", "")),
                        run_id=str(found.get("run_id", "")), tags=_pairs(found.get("tags")),
                        aliases=tuple(str(alias) for alias in found.get("aliases") or []))


def registered_model(found: Mapping[str, Any]) -> RegisteredModel:
    return RegisteredModel(name=str(found.get("name", "")),
                           aliases=_pairs(found.get("aliases"), "alias", "version"))


def run(found: Mapping[str, Any]) -> Run:
    info, data = found.get("info") or {}, found.get("data") or {}
    return Run(run_id=str(info.get("run_id") or info.get("run_uuid") or ""),
               experiment_id=str(info.get("experiment_id", "")),
               artifact_uri=str(info.get("artifact_uri", "")),
               # float() reads the proto JSON's "NaN" and "Infinity" strings too.
               metrics={str(m["key"]): float(m.get("value", 0.0))
                        for m in data.get("metrics") or []},
               params=_pairs(data.get("params")), tags=_pairs(data.get("tags")))


def artifact_url(tracking_uri: str, artifact_uri: str) -> str:
    """Where the tracking server proxies an `mlflow-artifacts:` URI (MLflow's
    MlflowArtifactsRepository.resolve_uri); MlflowError for any other scheme, since the
    operator holds no object store credentials."""
    tracking, found = urllib.parse.urlsplit(tracking_uri), urllib.parse.urlsplit(artifact_uri)
    if found.scheme != ARTIFACTS_SCHEME:
        raise MlflowError(f"artifact URI scheme {found.scheme!r} is not {ARTIFACTS_SCHEME!r}: "
                          "the operator reads and writes artifacts only through MLflow's "
                          "artifact proxy", "INVALID_PARAMETER_VALUE")
    path = re.sub(r"//+", "/", f"{tracking.path}/{ARTIFACTS}/{found.path}").rstrip("/")
    return urllib.parse.urlunsplit((tracking.scheme, found.netloc or tracking.netloc, path,
                                    "", ""))


def artifact_path(path: str) -> str:
    """A run-relative artifact path, refused if it would leave the run's artifacts."""
    normal = posixpath.normpath(path)
    if path.startswith("/") or normal == ".." or normal.startswith("../"):
        raise MlflowError(f"invalid artifact path {path!r}", "INVALID_PARAMETER_VALUE")
    return normal


_client: httpx.Client | None = None
_client_lock = threading.Lock()


def http_client() -> httpx.Client:
    """The process's one HTTP client (its pool of connections to MLflow), made at first use.
    Tests replace `_client` with one on an httpx.MockTransport."""
    global _client
    with _client_lock:
        if _client is None:
            _client = httpx.Client(timeout=TIMEOUT, headers={"User-Agent": "mlcycle-operator"})
        return _client


class Mlflow:
    """MLflow's REST API as one user (or anonymous): the registry's, the tracking server's,
    the artifact proxy's and the auth app's calls the operator makes."""

    def __init__(self, tracking_uri: str, credentials: Credentials | None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.tracking_uri = tracking_uri.rstrip("/")
        self._auth = (None if credentials is None
                      else httpx.BasicAuth(credentials.username, credentials.password))
        self._sleep = sleep

    @classmethod
    def admin(cls, tracking_uri: str) -> Mlflow:
        """As the operator's own user (MLflow's admin)."""
        return cls(tracking_uri, admin_credentials())

    def send(self, method: str, url: str, endpoint: str, **request: Any) -> httpx.Response:
        """The answer to the request, after retrying lost connections and transient answers;
        MlflowError if none came. `endpoint` names the request in errors, without the host."""
        for attempt in range(RETRIES + 1):
            delay = BACKOFF_SECONDS * 2 ** attempt
            try:
                response = http_client().request(method, url, auth=self._auth, **request)
            except httpx.TransportError as error:
                if attempt == RETRIES:  # not chained: httpx's error holds the request's headers
                    raise MlflowError(f"API request to {endpoint} failed: "
                                      f"{type(error).__name__}: {error}") from None
            else:
                if response.status_code not in TRANSIENT_STATUSES or attempt == RETRIES:
                    return response
                delay = max(delay, _retry_after(response))
            self._sleep(delay)
        raise AssertionError("unreachable")

    def call(self, method: str, endpoint: str, body: Mapping[str, Any] | None = None,
             ) -> dict[str, Any]:
        """A JSON call of the REST API (MLflow's call_endpoint): a GET sends `body` as the
        query, anything else as JSON; MlflowError unless the answer is 200 and a JSON object."""
        fields = {key: value for key, value in (body or {}).items() if value is not None}
        request: dict[str, Any] = {"params": fields} if method == "GET" else {"json": fields}
        return answer_object(
            self.send(method, f"{self.tracking_uri}{endpoint}", endpoint, **request), endpoint)

    # The model registry.
    def get_registered_model(self, name: str) -> RegisteredModel:
        found = self.call("GET", f"{API}/registered-models/get", {"name": name})
        return registered_model(found.get("registered_model") or {})

    def search_registered_models(self, filter_string: str | None = None,
                                 max_results: int | None = None,
                                 page_token: str | None = None) -> Page[RegisteredModel]:
        """Prompts excluded, as MlflowClient excludes them (MLflow keeps a prompt as a
        registered model with a tag)."""
        if PROMPT_TAG not in (filter_string or ""):
            not_prompts = f"tag.`{PROMPT_TAG}` != 'true'"
            filter_string = f"{filter_string} AND {not_prompts}" if filter_string else not_prompts
        found = self.call("GET", f"{API}/registered-models/search", {
            "filter": filter_string, "max_results": max_results, "page_token": page_token})
        return Page([registered_model(model) for model in found.get("registered_models") or []],
                    found.get("next_page_token") or None)

    def get_model_version(self, name: str, version: str) -> ModelVersion:
        found = self.call("GET", f"{API}/model-versions/get", {"name": name, "version": version})
        return model_version(found.get("model_version") or {})

    def get_model_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        found = self.call("GET", f"{API}/registered-models/alias", {"name": name, "alias": alias})
        return model_version(found.get("model_version") or {})

    def get_model_version_download_uri(self, name: str, version: str) -> str:
        found = self.call("GET", f"{API}/model-versions/get-download-uri",
                          {"name": name, "version": version})
        return str(found.get("artifact_uri", ""))

    # The tracking server.
    def get_experiment_id(self, name: str) -> str | None:
        """The experiment's id; None if there is none of that name."""
        try:
            found = self.call("GET", f"{API}/experiments/get-by-name", {"experiment_name": name})
        except MlflowError as error:
            if error.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise
        return str((found.get("experiment") or {}).get("experiment_id", ""))

    def get_run(self, run_id: str) -> Run:
        return run(self.call("GET", f"{API}/runs/get", {"run_uuid": run_id, "run_id": run_id})
                   .get("run") or {})

    def search_runs(self, experiment_ids: list[str], filter_string: str, max_results: int,
                    page_token: str | None = None) -> Page[Run]:
        """Active runs only, as MlflowClient.search_runs by default."""
        found = self.call("POST", f"{API}/runs/search", {
            "experiment_ids": experiment_ids, "filter": filter_string,
            "run_view_type": "ACTIVE_ONLY", "max_results": max_results,
            "page_token": page_token})
        return Page([run(each) for each in found.get("runs") or []],
                    found.get("next_page_token") or None)

    # The artifact proxy.
    def download_artifact(self, artifact_uri: str) -> bytes:
        """One file behind `mlflow-artifacts:`."""
        url = artifact_url(self.tracking_uri, artifact_uri)
        response = self.send("GET", url, ARTIFACTS)
        if response.status_code != 200:
            raise answer_error(response, ARTIFACTS)
        return response.content

    def log_artifacts(self, run_id: str, files: Mapping[str, bytes]) -> None:
        """Write files (run-relative path -> content) into the run's artifacts: MLflow's
        log_artifact of each, a file named as the path's last part put into its folder."""
        base = artifact_url(self.tracking_uri, self.get_run(run_id).artifact_uri)
        for path, content in files.items():
            mime_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
            response = self.send("PUT", f"{base}/{artifact_path(path)}", ARTIFACTS,
                                 content=content, headers={"Content-Type": mime_type})
            if not response.is_success:
                raise answer_error(response, ARTIFACTS)

    # The basic-auth app's users (mlflow.server.auth.client's calls).
    def create_user(self, username: str, password: str) -> None:
        self.call("POST", f"{API}/users/create", {"username": username, "password": password})

    def update_user_password(self, username: str, password: str) -> None:
        self.call("PATCH", f"{API}/users/update-password",
                  {"username": username, "password": password})


def _retry_after(response: httpx.Response) -> float:
    """The answer's Retry-After in seconds (MLflow's client honours it), capped; 0 if none."""
    try:
        return min(float(response.headers.get("Retry-After", "")), MAX_RETRY_AFTER_SECONDS)
    except ValueError:
        return 0.0
