"""kopf_bodies: the slim diff base judges changes exactly as kopf's own (the same essence
of a body), and kopf's event processing gets every event without managedFields."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import kopf
import pytest
from kopf._core.reactor import processing

from mlcycle.kopf_bodies import diffbase_storage, drop_managed_fields
from mlcycle_contract import constants

STORED = f"{constants.KOPF_ANNOTATION_PREFIX}/last-handled-configuration"
BODY: dict[str, Any] = {
    "apiVersion": "mlcycle.dev/v1alpha1", "kind": "TrainingJob",
    "metadata": {
        "name": "iris", "namespace": "ml", "uid": "u1", "resourceVersion": "42",
        "generation": 3, "creationTimestamp": "2026-12-03T10:00:00Z",
        "labels": {"team": "a"},
        "annotations": {"note": "kept", STORED: '{"spec": {}}',
                        "kubectl.kubernetes.io/last-applied-configuration": "{}",
                        "kopf.zalando.org/last-handled-configuration": "{}"},
        "finalizers": ["x"], "ownerReferences": [{"kind": "Dataset", "name": "d"}],
        "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {"f:a": {}}}}],
    },
    "spec": {"datasetRef": {"name": "flowers"}, "params": {"n": [1, 2]}},
    "status": {"phase": "Running", "conditions": [{"type": "Ready"}]},
}


def kopf_essence(body: dict[str, Any]) -> Any:
    storage = kopf.AnnotationsDiffBaseStorage(prefix=constants.KOPF_ANNOTATION_PREFIX,
                                              key="last-handled-configuration")
    return storage.build(body=kopf.Body(copy.deepcopy(body)))


def test_the_essence_is_kopf_s_for_a_full_body_and_for_one_without_labels_or_annotations(
) -> None:
    ours = diffbase_storage()
    assert ours.build(body=kopf.Body(copy.deepcopy(BODY))) == kopf_essence(BODY)
    bare = copy.deepcopy(BODY)
    del bare["metadata"]["labels"], bare["metadata"]["annotations"]
    assert ours.build(body=kopf.Body(bare)) == kopf_essence(bare)
    assert ours.build(body=kopf.Body(copy.deepcopy(BODY)))["spec"] == BODY["spec"]


def test_the_essence_is_a_copy_that_later_changes_to_the_body_leave_alone() -> None:
    body = copy.deepcopy(BODY)
    essence = diffbase_storage().build(body=kopf.Body(body))
    body["spec"]["params"]["n"].append(3)
    body["metadata"]["labels"]["team"] = "b"
    assert essence["spec"]["params"]["n"] == [1, 2]
    assert essence["metadata"]["labels"] == {"team": "a"}


def test_kopf_processes_every_event_without_managed_fields_and_gets_its_answer_back(
        monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[dict[str, Any]] = []

    async def kopf_s_processor(*, raw_event: dict[str, Any], **_: Any) -> str | None:
        seen.append(copy.deepcopy(raw_event))
        return "43"  # the resourceVersion kopf patched, which its worker waits for

    monkeypatch.setattr(processing, "process_resource_event", kopf_s_processor)
    drop_managed_fields()
    event = {"type": "MODIFIED", "object": copy.deepcopy(BODY)}
    assert asyncio.run(processing.process_resource_event(raw_event=event)) == "43"
    [processed] = seen
    assert "managedFields" not in processed["object"]["metadata"]
    assert processed["object"]["spec"] == BODY["spec"]
    assert processed["object"]["metadata"]["uid"] == "u1"
    assert asyncio.run(processing.process_resource_event(raw_event={"type": "ERROR"})) == "43"
