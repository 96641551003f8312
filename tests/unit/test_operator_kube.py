"""kube's Job helpers against a recording fake of the client: a Job this call creates costs
one request; an existing one is read with its Pods."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from mlcycle import kube
from mlcycle.objects import parse_dataset

MANIFEST = {"metadata": {"name": "ingest-iris-1", "labels": {}}}


def answer(body: dict[str, Any]) -> SimpleNamespace:
    return SimpleNamespace(data=json.dumps(body).encode())


class FakeApi:
    def __init__(self, exists: bool) -> None:
        self.exists, self.requests = exists, []

    def post(self, path: str, manifest: dict[str, Any]) -> dict[str, Any]:
        assert path == "/apis/batch/v1/namespaces/ml/jobs"
        self.requests.append("create")
        if self.exists:
            raise ApiException(status=409, reason="AlreadyExists")
        return {**manifest, "status": {}}

    def read_namespaced_job(self, name: str, namespace: str, **options: Any) -> Any:
        self.requests.append("read")
        return answer({"metadata": {"name": name}, "status": {"active": 1}})

    def list_namespaced_pod(self, namespace: str, label_selector: str, **options: Any) -> Any:
        self.requests.append(f"pods {label_selector}")
        return answer({"items": [{"metadata": {"name": "ingest-iris-1-x"}}]})


@pytest.fixture
def api(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> FakeApi:
    fake = FakeApi(exists=request.param)
    monkeypatch.setattr(kube, "batch", lambda: fake)
    monkeypatch.setattr(kube, "post", fake.post)
    monkeypatch.setattr(kube, "core", lambda: fake)
    return fake


@pytest.mark.parametrize("api", [False], indirect=True)
def test_a_job_this_call_creates_is_returned_without_asking_for_its_pods(api: FakeApi) -> None:
    job, pods = kube.ensure_job_with_pods("ml", MANIFEST)
    assert job == {**MANIFEST, "status": {}}
    assert pods == []
    assert api.requests == ["create"]


@pytest.mark.parametrize("api", [True], indirect=True)
def test_an_existing_job_is_read_with_its_pods(api: FakeApi) -> None:
    job, pods = kube.ensure_job_with_pods("ml", MANIFEST)
    assert job["status"] == {"active": 1}
    assert [pod["metadata"]["name"] for pod in pods] == ["ingest-iris-1-x"]
    assert api.requests == ["create", "read", "pods job-name=ingest-iris-1"]
    assert kube.ensure_job("ml", MANIFEST) == job  # without its Pods
    assert api.requests[-1] == "read"


class FakeCustomApi:
    def __init__(self) -> None:
        self.patches: list[dict[str, Any]] = []

    def patch_namespaced_custom_object_status(self, *args: Any) -> None:
        self.patches.append(args[-1])


def test_a_status_equal_to_the_one_read_is_not_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    """Most events of a running Job change nothing in its owner's status: no request."""
    api = FakeCustomApi()
    monkeypatch.setattr(kube, "custom", lambda: api)
    dataset = parse_dataset({
        "apiVersion": "mlcycle.dev/v1alpha1", "kind": "Dataset",
        "metadata": {"name": "iris", "namespace": "ml", "uid": "u1", "generation": 1},
        "spec": {"source": {"builtin": "iris"}, "target": "target"},
        "status": {"phase": "Ingesting", "jobName": "iris-ingest-1"}})
    kube.patch_status(dataset, dataset.status.to_wire())
    assert api.patches == []
    kube.patch_status(dataset, {**dataset.status.to_wire(), "phase": "Failed"})
    assert [patch["status"]["phase"] for patch in api.patches] == ["Failed"]
