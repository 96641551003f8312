"""The operator's MLflow REST client (mlcycle.mlflow_api) and its users (registry, alias_board,
studies, tenancy), against an httpx.MockTransport that answers as MLflow 3.17's server does:
the requests they build (endpoint, method, query or JSON body, credentials) and how they read
the answers and errors."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from mlcycle import alias_board, mlflow_api, registry, studies, tenancy
from mlcycle.mlflow_api import Credentials, Mlflow, MlflowError
from mlcycle.settings import Settings
from mlcycle_contract.api.learning import Algorithm, Metric
from mlcycle_contract.api.search import TrialState
from mlcycle_contract.environment import (
    TAG_SEARCH_ROLE,
    TAG_SEARCH_STUDY,
    TAG_TRAININGJOB_UID,
    TAG_TRIAL_ALGORITHM,
    TAG_TRIAL_ERROR,
    TAG_TRIAL_NUMBER,
    TAG_TRIAL_STATE,
    runtime_tag,
)

URI = "http://mlflow:5000"
ADMIN = Credentials("admin", "admin-secret-password")
USER = registry.RegistryUser("mlcycle-ns-team-a", "team-a-secret-password")
Answer = httpx.Response | Callable[[httpx.Request], httpx.Response]


def error(status: int, code: str, message: str = "no") -> httpx.Response:
    return httpx.Response(status, json={"error_code": code, "message": message})


@dataclass
class Server:
    """Answers by (method, path), in order when a list is given; records every request."""

    routes: dict[tuple[str, str], Answer | list[Answer]]
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.routes[(request.method, request.url.path)]
        if isinstance(answer, list):
            answer = answer.pop(0)
        return answer(request) if callable(answer) else answer

    def user(self, index: int) -> str:
        scheme, _, encoded = self.requests[index].headers["Authorization"].partition(" ")
        assert scheme == "Basic"
        return base64.b64decode(encoded).decode().partition(":")[0]

    def query(self, index: int) -> dict[str, str]:
        return dict(self.requests[index].url.params)

    def body(self, index: int) -> Any:
        return json.loads(self.requests[index].content)


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Server]:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", ADMIN.username)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN.password)

    def start(routes: dict[tuple[str, str], Answer | list[Answer]]) -> Server:
        server = Server(routes)
        monkeypatch.setattr(mlflow_api, "_client", httpx.Client(
            transport=httpx.MockTransport(server)))
        return server
    return start


def version_answer(version: str, tags: dict[str, str], run_id: str = "r1") -> httpx.Response:
    return httpx.Response(200, json={"model_version": {
        "name": "iris", "version": version, "run_id": run_id, "aliases": ["champion"],
        "tags": [{"key": key, "value": value} for key, value in tags.items()]}})


RUNTIME = {runtime_tag("python"): "3.11.7", runtime_tag("sklearn"): "1.9.1",
           runtime_tag("numpy"): "2.4.6"}
ALIAS = ("GET", "/api/2.0/mlflow/registered-models/alias")
VERSION = ("GET", "/api/2.0/mlflow/model-versions/get")
MODEL = ("GET", "/api/2.0/mlflow/registered-models/get")
SEARCH_MODELS = ("GET", "/api/2.0/mlflow/registered-models/search")


def test_resolve_reads_the_alias_as_the_namespace_s_user(serve: Callable[..., Server]) -> None:
    server = serve({ALIAS: version_answer("3", {**RUNTIME, "other": "x"})})
    found = registry.resolve(URI, USER, "iris", None, "champion")
    assert found == registry.ModelVersion("iris", 3, {"python": "3.11.7", "sklearn": "1.9.1",
                                                      "numpy": "2.4.6"})
    assert str(server.requests[0].url) == (
        "http://mlflow:5000/api/2.0/mlflow/registered-models/alias?name=iris&alias=champion")
    assert server.user(0) == USER.username


def test_resolve_reads_a_pinned_version(serve: Callable[..., Server]) -> None:
    server = serve({VERSION: version_answer("2", {})})
    assert registry.resolve(URI, USER, "iris", 2, None).version == 2
    assert server.query(0) == {"name": "iris", "version": "2"}


@pytest.mark.parametrize("answer", [error(404, "RESOURCE_DOES_NOT_EXIST"),
                                    error(400, "INVALID_PARAMETER_VALUE"),
                                    httpx.Response(403, text="Permission denied")])
def test_a_missing_model_is_model_not_found(serve: Callable[..., Server],
                                            answer: httpx.Response) -> None:
    server = serve({ALIAS: answer, SEARCH_MODELS: httpx.Response(200, json={})})
    with pytest.raises(registry.ModelNotFound, match="registered model 'iris' has no alias "
                       "'champion'"):
        registry.resolve(URI, USER, "iris", None, "champion")
    if answer.status_code == 403:  # the admin looked: no such model
        assert server.user(1) == ADMIN.username
        assert server.query(1) == {"max_results": "1", "filter": "name = 'iris' AND "
                                   "tag.`mlflow.prompt.is_prompt` != 'true'"}


def test_another_namespace_s_model_is_access_denied(serve: Callable[..., Server]) -> None:
    serve({MODEL: httpx.Response(403, text="Permission denied"),
           SEARCH_MODELS: httpx.Response(200, json={"registered_models": [{"name": "iris"}]})})
    with pytest.raises(registry.ModelAccessDenied, match="denies this namespace's user "
                       "'mlcycle-ns-team-a'"):
        registry.check_registrable(URI, USER, "iris")


def test_a_model_not_created_yet_is_registrable(serve: Callable[..., Server]) -> None:
    serve({MODEL: error(404, "RESOURCE_DOES_NOT_EXIST")})
    registry.check_registrable(URI, USER, "iris")


def test_registry_failures_raise_mlflow_errors_with_its_code(
        serve: Callable[..., Server]) -> None:
    serve({MODEL: error(400, "BAD_REQUEST", "broken")})
    with pytest.raises(MlflowError) as raised:
        registry.check_registrable(URI, USER, "iris")
    assert (raised.value.error_code, raised.value.message) == ("BAD_REQUEST", "BAD_REQUEST: broken")


def test_model_file_reads_mlmodel_through_the_artifact_proxy(
        serve: Callable[..., Server]) -> None:
    server = serve({
        ("GET", "/api/2.0/mlflow/model-versions/get-download-uri"): httpx.Response(
            200, json={"artifact_uri": "mlflow-artifacts:/1/models/m-abc/artifacts"}),
        ("GET", "/api/2.0/mlflow-artifacts/artifacts/1/models/m-abc/artifacts/MLmodel"):
            httpx.Response(200, text="flavors:\n  sklearn:\n    serialization_format: skops\n"),
    })
    found = registry.model_file(URI, registry.ModelVersion("iris", 3, {}))
    assert found == {"flavors": {"sklearn": {"serialization_format": "skops"}}}
    assert server.query(0) == {"name": "iris", "version": "3"}
    assert [server.user(0), server.user(1)] == [ADMIN.username] * 2


def test_version_lineage_reads_the_run_and_the_training_job(
        serve: Callable[..., Server]) -> None:
    serve({VERSION: version_answer("3", {TAG_TRAININGJOB_UID: "uid-1"}, run_id="r9")})
    assert registry.version_lineage(URI, "iris", 3) == registry.Lineage("r9", "uid-1")


def test_log_files_puts_each_file_into_the_run_s_artifacts(serve: Callable[..., Server]) -> None:
    base = "/api/2.0/mlflow-artifacts/artifacts/1/r9/artifacts/drift/detections"
    server = serve({
        ("GET", "/api/2.0/mlflow/runs/get"): httpx.Response(200, json={"run": {"info": {
            "run_id": "r9", "artifact_uri": "mlflow-artifacts:/1/r9/artifacts"}}}),
        ("PUT", f"{base}/v3.png"): httpx.Response(200, json={}),
        ("PUT", f"{base}/v3.json"): httpx.Response(200, json={}),
    })
    registry.log_files(URI, "r9", {"drift/detections/v3.png": b"\x89PNG",
                                   "drift/detections/v3.json": b"{}"})
    assert server.query(0) == {"run_uuid": "r9", "run_id": "r9"}
    assert [(r.headers["Content-Type"], r.content) for r in server.requests[1:]] == [
        ("image/png", b"\x89PNG"), ("application/json", b"{}")]
    assert {server.user(i) for i in range(3)} == {ADMIN.username}


def test_the_alias_board_pages_through_every_registered_model(
        serve: Callable[..., Server]) -> None:
    server = serve({SEARCH_MODELS: [
        httpx.Response(200, json={"registered_models": [
            {"name": "iris", "aliases": [{"alias": "champion", "version": "3"},
                                         {"alias": "challenger", "version": "4"}]},
            {"name": "wine"}], "next_page_token": "next"}),
        httpx.Response(200, json={"registered_models": [
            {"name": "digits", "aliases": [{"alias": "champion", "version": "1"}]}]}),
    ]})
    assert alias_board.read_aliases(URI) == {("iris", "champion"): 3, ("iris", "challenger"): 4,
                                             ("digits", "champion"): 1}
    models = {"filter": "tag.`mlflow.prompt.is_prompt` != 'true'", "max_results": "1000"}
    assert [server.query(0), server.query(1)] == [models, {**models, "page_token": "next"}]


def trial_run(run_id: str, tags: dict[str, str], metrics: dict[str, Any],
              params: dict[str, str]) -> dict[str, Any]:
    return {"info": {"run_id": run_id, "experiment_id": "7"}, "data": {
        "tags": [{"key": k, "value": v} for k, v in tags.items()],
        "metrics": [{"key": k, "value": v, "step": 0} for k, v in metrics.items()],
        "params": [{"key": k, "value": v} for k, v in params.items()]}}


def test_read_trials_searches_the_study_s_runs_page_by_page(serve: Callable[..., Server]) -> None:
    algorithm = Algorithm.LOGISTIC_REGRESSION
    study = {TAG_SEARCH_STUDY: "s1"}
    trial = {**study, TAG_SEARCH_ROLE: "trial", TAG_TRIAL_ALGORITHM: algorithm.value,
             TAG_TRIAL_STATE: TrialState.COMPLETE.value}
    server = serve({
        ("GET", "/api/2.0/mlflow/experiments/get-by-name"): httpx.Response(
            200, json={"experiment": {"experiment_id": "7", "name": "team-a/iris"}}),
        ("POST", "/api/2.0/mlflow/runs/search"): [
            httpx.Response(200, json={"runs": [
                trial_run("t1", {**trial, TAG_TRIAL_NUMBER: "1"}, {"accuracy": 0.9},
                          {"algorithm": algorithm.value, "C": "0.5"}),
                trial_run("p", {**study, TAG_SEARCH_ROLE: "parent"}, {}, {})],
                "next_page_token": "more"}),
            httpx.Response(200, json={"runs": [
                trial_run("t0", {**trial, TAG_TRIAL_NUMBER: "0",
                                 TAG_TRIAL_STATE: TrialState.FAILED.value,
                                 TAG_TRIAL_ERROR: "boom"}, {"accuracy": "NaN"}, {})]}),
        ],
    })
    found = studies.read_trials(URI, "team-a/iris", "s1", Metric.ACCURACY)
    assert server.query(0) == {"experiment_name": "team-a/iris"}
    assert server.body(1) == {"experiment_ids": ["7"], "filter": f"tags.`{TAG_SEARCH_STUDY}` = "
                              "'s1'", "run_view_type": "ACTIVE_ONLY", "max_results": 1000}
    assert server.body(2)["page_token"] == "more"
    assert (found.parent_run_id, found.experiment_id, found.errors) == ("p", "7", {0: "boom"})
    first, second = found.trials
    assert (first.number, first.state, first.run_id) == (0, TrialState.FAILED, "t0")
    assert (second.number, second.algorithm, second.value) == (1, algorithm, 0.9)
    assert second.hyperparameters == '{"C": 0.5}'


def test_read_trials_before_the_experiment_exists(serve: Callable[..., Server]) -> None:
    serve({("GET", "/api/2.0/mlflow/experiments/get-by-name"):
           error(404, "RESOURCE_DOES_NOT_EXIST")})
    assert studies.read_trials(URI, "team-a/iris", "s1", Metric.ACCURACY) == studies.Trials(
        [], None, None, {})


def test_a_tenant_s_mlflow_user_is_created_or_its_password_set_again(
        serve: Callable[..., Server]) -> None:
    server = serve({
        ("POST", "/api/2.0/mlflow/users/create"): error(400, "RESOURCE_ALREADY_EXISTS"),
        ("PATCH", "/api/2.0/mlflow/users/update-password"): httpx.Response(200, json={}),
    })
    tenant = tenancy.Tenant("team-a", "s3-secret", "mlflow-secret")
    tenancy._provision_registry(tenant, Settings(mlflow_tracking_uri=URI))
    assert [server.body(0), server.body(1)] == [
        {"username": "mlcycle-ns-team-a", "password": "mlflow-secret"}] * 2
    assert server.requests[0].headers["Content-Type"] == "application/json"
    assert {server.user(0), server.user(1)} == {ADMIN.username}


def test_a_failed_tenant_user_says_mlflow_s_code_and_no_credentials(
        serve: Callable[..., Server]) -> None:
    serve({("POST", "/api/2.0/mlflow/users/create"): httpx.Response(401, text="no")})
    with pytest.raises(tenancy.TenancyUnavailable) as raised:
        tenancy._provision_registry(tenancy.Tenant("team-a", "s3-secret", "mlflow-secret"),
                                    Settings(mlflow_tracking_uri=URI))
    assert str(raised.value) == "MLflow admin API: UNAUTHENTICATED"


def failing(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("[Errno 111] Connection refused", request=request)


def test_transient_failures_are_retried_within_seconds(serve: Callable[..., Server]) -> None:
    server = serve({MODEL: [failing, httpx.Response(503, headers={"Retry-After": "60"}),
                            httpx.Response(200, json={"registered_model": {"name": "iris"}})]})
    slept: list[float] = []
    assert Mlflow(URI, USER, slept.append).get_registered_model("iris").name == "iris"
    assert slept == [0.5, 5.0] and len(server.requests) == 3


def test_retries_end_in_an_mlflow_error_without_credentials(
        serve: Callable[..., Server]) -> None:
    serve({MODEL: [failing] * 4})
    slept: list[float] = []
    with pytest.raises(MlflowError) as raised:
        Mlflow("http://mlflow:5000/", USER, slept.append).get_registered_model("iris")
    assert slept == [0.5, 1.0, 2.0]
    assert raised.value.message == ("API request to /api/2.0/mlflow/registered-models/get "
                                    "failed: ConnectError: [Errno 111] Connection refused")
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    assert USER.password not in repr(USER)


def test_a_last_transient_answer_is_an_error_with_its_code(serve: Callable[..., Server]) -> None:
    serve({MODEL: [httpx.Response(503, text="<html>down</html>")] * 4})
    with pytest.raises(MlflowError) as raised:
        Mlflow(URI, USER, lambda _: None).get_registered_model("iris")
    assert raised.value.error_code == "TEMPORARILY_UNAVAILABLE"
    assert "failed with error code 503 != 200" in raised.value.message


def test_an_answer_that_is_not_a_json_object_is_an_error(serve: Callable[..., Server]) -> None:
    serve({MODEL: httpx.Response(200, text="<html/>")})
    with pytest.raises(MlflowError, match="not in a valid JSON format"):
        Mlflow(URI, USER).get_registered_model("iris")


def test_no_credentials_send_no_authorization(serve: Callable[..., Server],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_PASSWORD")
    server = serve({MODEL: httpx.Response(200, json={})})
    Mlflow.admin(URI).get_registered_model("iris")
    assert "Authorization" not in server.requests[0].headers


@pytest.mark.parametrize(("tracking", "artifact", "url"), [
    ("http://mlflow:5000", "mlflow-artifacts:/1/r/artifacts/MLmodel",
     "http://mlflow:5000/api/2.0/mlflow-artifacts/artifacts/1/r/artifacts/MLmodel"),
    ("https://host/prefix/", "mlflow-artifacts:/1/r/artifacts",
     "https://host/prefix/api/2.0/mlflow-artifacts/artifacts/1/r/artifacts"),
    ("http://mlflow:5000", "mlflow-artifacts://other:5001/1/r",
     "http://other:5001/api/2.0/mlflow-artifacts/artifacts/1/r"),
])
def test_artifact_uris_resolve_to_the_proxy_as_mlflow_resolves_them(
        tracking: str, artifact: str, url: str) -> None:
    assert mlflow_api.artifact_url(tracking, artifact) == url


@pytest.mark.parametrize("artifact", ["s3://bucket/1/r/artifacts", "runs:/r/model"])
def test_artifacts_outside_the_proxy_are_refused(artifact: str) -> None:
    with pytest.raises(MlflowError, match="only through MLflow's artifact proxy"):
        mlflow_api.artifact_url(URI, artifact)


@pytest.mark.parametrize("path", ["/etc/passwd", "../other-run/x", "a/../../x"])
def test_artifact_paths_stay_in_the_run(path: str) -> None:
    with pytest.raises(MlflowError, match="invalid artifact path"):
        mlflow_api.artifact_path(path)
