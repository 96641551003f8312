"""What kopf keeps of each object's body, and copies on each event, made smaller.

kopf keeps the latest body of every object whose kind has timers (all three of ours), and
copies bodies for each handler and each diff. Two cuts, measured with bench.scale's load
(2,000 objects) and burst (100 new Datasets):
- without metadata.managedFields, which nothing in the operator reads and which is more than
  half of a body's JSON (the field sets of every writer);
- a diff base built from the fields it keeps, where kopf deep-copies the whole body first.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any, cast

import kopf
from kopf._core.reactor import processing

from mlcycle_contract import constants

# Everything the diff base keeps of metadata; status is never in it.
ESSENCE_METADATA = ("labels", "annotations")


class SlimDiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    """kopf's annotation-stored diff base, with the same essence, built from a slim copy of
    the body instead of a deep copy of all of it."""

    def build(self, *, body: kopf.Body,
              extra_fields: Iterable[Any] | None = None) -> kopf.BodyEssence:
        if extra_fields:  # fields picked from the status or metadata: kopf's own way
            return super().build(body=body, extra_fields=extra_fields)
        metadata = body.get("metadata") or {}
        slim: dict[str, Any] = {
            key: value for key, value in body.items() if key not in ("metadata", "status")}
        slim["metadata"] = {key: metadata[key] for key in ESSENCE_METADATA if key in metadata}
        return super().build(body=kopf.Body(cast(kopf.RawBody, slim)))


def diffbase_storage() -> SlimDiffBaseStorage:
    return SlimDiffBaseStorage(prefix=constants.KOPF_ANNOTATION_PREFIX,
                               key="last-handled-configuration")


def without_managed_fields(raw_event: Any) -> Any:
    """The watch event with its object's metadata.managedFields dropped (in place)."""
    body = raw_event.get("object") if isinstance(raw_event, dict) else None
    if isinstance(body, dict) and isinstance(body.get("metadata"), dict):
        body["metadata"].pop("managedFields", None)
    return raw_event


def drop_managed_fields() -> None:
    """Every watch event reaches kopf's processing without managedFields. kopf (pinned in
    the lock files) looks its event processor up in `processing` when it starts its
    watchers, so this must run before `kopf.run`, and once."""
    process = processing.process_resource_event

    @functools.wraps(process)
    async def process_resource_event(**kwargs: Any) -> str | None:  # kopf passes keywords
        kwargs["raw_event"] = without_managed_fields(kwargs["raw_event"])
        return await process(**kwargs)

    processing.process_resource_event = process_resource_event  # type: ignore[assignment]
