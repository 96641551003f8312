"""kopf_bodies: the slim diff base judges changes exactly as kopf's own (the same essence
of a body), kopf's event processing gets every event without managedFields, and keeps a
body only for an object whose timer runs."""

from __future__ import annotations

import asyncio
import copy
from typing import Any, cast

import kopf
import pytest
from kopf._core.reactor import inventory, processing

from mlcycle.kopf_bodies import diffbase_storage, slim_event_processing
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
    slim_event_processing()
    memories = inventory.ResourceMemories()
    event = {"type": "MODIFIED", "object": copy.deepcopy(BODY)}
    assert asyncio.run(processing.process_resource_event(
        raw_event=event, memories=memories)) == "43"
    [processed] = seen
    assert "managedFields" not in processed["object"]["metadata"]
    assert processed["object"]["spec"] == BODY["spec"]
    assert processed["object"]["metadata"]["uid"] == "u1"
    assert asyncio.run(processing.process_resource_event(
        raw_event={"type": "ERROR"}, memories=memories)) == "43"


def process_with_timer_running(running: bool, monkeypatch: pytest.MonkeyPatch,
                               ) -> inventory.ResourceMemory:
    """An event through kopf's processing as kopf (pinned) does it for a kind with timers:
    the object's memory keeps its latest body, and a timer runs if its filter holds."""
    async def kopf_s_processor(*, raw_event: dict[str, Any],
                               memories: inventory.ResourceMemories, **_: Any) -> None:
        memory = await memories.recall(raw_event["object"])
        memory.daemons_memory.live_fresh_body = kopf.Body(raw_event["object"])
        if running:
            memory.daemons_memory.running_daemons[kopf.HandlerId("tick")] = cast(Any, object())

    monkeypatch.setattr(processing, "process_resource_event", kopf_s_processor)
    slim_event_processing()
    memories = inventory.ResourceMemories()
    event = {"type": "ADDED", "object": copy.deepcopy(BODY)}
    asyncio.run(processing.process_resource_event(raw_event=event, memories=memories))
    return asyncio.run(memories.recall(BODY))


def test_no_body_is_kept_for_an_object_without_a_running_timer(
        monkeypatch: pytest.MonkeyPatch) -> None:
    memory = process_with_timer_running(False, monkeypatch)
    assert memory.daemons_memory.live_fresh_body is None


def test_the_body_of_an_object_whose_timer_runs_stays_for_the_timer(
        monkeypatch: pytest.MonkeyPatch) -> None:
    memory = process_with_timer_running(True, monkeypatch)
    live = memory.daemons_memory.live_fresh_body
    assert live is not None and live["metadata"]["uid"] == "u1"
