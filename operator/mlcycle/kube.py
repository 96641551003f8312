"""Idempotent Kubernetes I/O: the only module that talks to the API for the reconcilers.

`ensure_*` functions create what is missing and return what exists, so a retried or
restarted reconcile never makes a twin: child names are deterministic and a 409 on
create means "already there".
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
from collections.abc import Callable
from functools import cache
from typing import Any, TypeVar

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient

from mlcycle import faults, metrics
from mlcycle.objects import Object
from mlcycle_contract import constants
from mlcycle_contract.constants import ResourceNames

logger = logging.getLogger(__name__)
FIELD_MANAGER = "mlcycle-operator"
Manifest = dict[str, Any]
T = TypeVar("T")
CONNECTIONS = 32  # more than kopf's worker threads and the acknowledging ones together


@cache
def api_client() -> client.ApiClient:
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    configuration = client.Configuration.get_default_copy()
    # kopf's worker threads and the acknowledging ones share these connections; urllib3
    # closes (and logs) every one beyond the pool, which holds 5 per CPU by default.
    configuration.connection_pool_maxsize = CONNECTIONS
    return client.ApiClient(configuration)


def core() -> client.CoreV1Api:
    return client.CoreV1Api(api_client())


def batch() -> client.BatchV1Api:
    return client.BatchV1Api(api_client())


def custom() -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client())


@cache
def dynamic() -> DynamicClient:
    return DynamicClient(api_client())


def unless_missing(call: Callable[[], T]) -> T | None:
    """The call's result, or None if the API answers 404 Not Found."""
    try:
        return call()
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def post(path: str, manifest: Manifest) -> Manifest:
    """Create an object from its manifest, answering it as plain data. The typed create
    methods validate a dict into the client's model and dump that back to JSON: for a Job,
    more of the operator's CPU than the request itself in a burst of new objects."""
    api = api_client()
    request = api.param_serialize(
        method="POST", resource_path=path, body=manifest, auth_settings=["BearerToken"],
        header_params={"Accept": "application/json", "Content-Type": "application/json"})
    response = api.call_api(*request)
    response.read()
    if not 200 <= response.status < 300:
        raise ApiException(http_resp=response)
    return dict(json.loads(response.data))


def ensure_job(namespace: str, manifest: Manifest) -> Manifest:
    """Create the Job unless a Job of that name exists; return the Job as it is now."""
    return _created_or_existing_job(namespace, manifest)[0]


def ensure_job_with_pods(namespace: str, manifest: Manifest,
                         ) -> tuple[Manifest, list[Manifest]]:
    """`ensure_job`, and the Job's Pods: none for a Job this call created (the job
    controller makes them after), so a new Job costs one request, not two."""
    job, created = _created_or_existing_job(namespace, manifest)
    return job, [] if created else job_pods(namespace, manifest["metadata"]["name"])


def _created_or_existing_job(namespace: str, manifest: Manifest) -> tuple[Manifest, bool]:
    """The Job as it is now, and whether this call created it."""
    name = manifest["metadata"]["name"]
    try:
        created = post(f"/apis/batch/v1/namespaces/{namespace}/jobs", manifest)
        metrics.job_created(manifest, constants.LABEL_COMPONENT)
        logger.info("Created Job %s/%s", namespace, name)
        component = manifest["metadata"].get("labels", {}).get(constants.LABEL_COMPONENT)
        faults.reached(namespace, f"Job/{component}/created")
        return created, True
    except ApiException as error:
        if error.status != 409:
            raise
    return read_job(namespace, name) or {}, False


def delete_job(namespace: str, name: str) -> None:
    """Delete the Job, and its Pods after it (Background): the API's default for a Job,
    kept for old clients, would orphan the Pods and leave them running. Gone already is
    fine."""
    unless_missing(lambda: batch().delete_namespaced_job(
        name, namespace, propagation_policy="Background"))
    logger.info("Deleted Job %s/%s", namespace, name)
    faults.reached(namespace, "Job/deleted")


def jobs(namespace: str, labels: dict[str, str]) -> list[Manifest]:
    selector = ",".join(f"{key}={value}" for key, value in labels.items())
    found = batch().list_namespaced_job(namespace, label_selector=selector)
    return [dict(api_client().sanitize_for_serialization(job)) for job in found.items]


def ensure_secret(namespace: str, manifest: Manifest) -> dict[str, str]:
    """The Secret's data as it is now (base64-encoded, as the API holds it), created from the
    manifest if there is no Secret of that name. Never logged: it holds credentials."""
    name = manifest["metadata"]["name"]

    def read() -> client.V1Secret | None:
        return unless_missing(lambda: core().read_namespaced_secret(name, namespace))

    existing = read()
    if existing is None:
        try:
            existing = core().create_namespaced_secret(namespace, manifest)
            logger.info("Created Secret %s/%s", namespace, name)
            faults.reached(namespace, "Secret/created")
        except ApiException as error:
            if error.status != 409:
                raise
            existing = read()
    return dict((existing.data if existing else None) or {})


def as_manifest(response: Any) -> Manifest:
    """The API's JSON answer as plain data (a call made with `_preload_content=False`): the
    client's typed models cost more CPU to build and to turn back into dicts than the call."""
    return dict(json.loads(response.data))


def read_job(namespace: str, name: str) -> Manifest | None:
    return unless_missing(lambda: as_manifest(batch().read_namespaced_job(
        name, namespace, _preload_content=False)))


def apply(manifest: Manifest) -> Manifest:
    """Server-side apply, as the operator's field manager, forcing ownership of its fields."""
    resource = dynamic().resources.get(api_version=manifest["apiVersion"], kind=manifest["kind"])
    applied = resource.server_side_apply(
        body=manifest,
        name=manifest["metadata"]["name"],
        namespace=manifest["metadata"].get("namespace"),
        field_manager=FIELD_MANAGER,
        force_conflicts=True,
    )
    faults.reached(manifest["metadata"].get("namespace", ""), f"{manifest['kind']}/applied")
    return dict(applied.to_dict())


def delete_if_exists(api_version: str, kind: str, namespace: str, name: str) -> None:
    resource = dynamic().resources.get(api_version=api_version, kind=kind)
    unless_missing(lambda: resource.delete(name=name, namespace=namespace))


def read(api_version: str, kind: str, namespace: str, name: str) -> Manifest | None:
    resource = dynamic().resources.get(api_version=api_version, kind=kind)
    return unless_missing(lambda: dict(resource.get(name=name, namespace=namespace).to_dict()))


def job_pods(namespace: str, job_name: str) -> list[Manifest]:
    return pods(namespace, {"job-name": job_name})


def pods(namespace: str, labels: dict[str, str]) -> list[Manifest]:
    selector = ",".join(f"{key}={value}" for key, value in labels.items())
    found = as_manifest(core().list_namespaced_pod(
        namespace, label_selector=selector, _preload_content=False))
    return list(found.get("items") or [])


def read_custom(names: ResourceNames, namespace: str, name: str) -> Manifest | None:
    return unless_missing(lambda: dict(custom().get_namespaced_custom_object(
        constants.API_GROUP, constants.API_VERSION, namespace, names.plural, name)))


def patch_status(resource: Object[Any], status: Manifest, if_unchanged: bool = False) -> None:
    """Merge-patch the status subresource. Every path writes status here, the Job and
    Deployment event handlers included, which have no kopf `patch` for the custom resource.
    `if_unchanged`: only if the object is still at the resourceVersion it was read at (else
    409 Conflict), so a status computed from an older read never lands over a newer one.
    A status equal to the one read is not sent (most events of a running Job change nothing
    in its owner's status), but passes the same kill points: the API holds it either way."""
    metadata = resource.metadata
    patch: Manifest = {"status": status}
    if if_unchanged and metadata.resource_version:
        patch["metadata"] = {"resourceVersion": metadata.resource_version}
    point = f"{resource.names.kind}/status/{status.get('phase')}"
    faults.reached(metadata.namespace, point)
    if status != resource.status.to_wire():
        custom().patch_namespaced_custom_object_status(
            constants.API_GROUP, constants.API_VERSION, metadata.namespace,
            resource.names.plural, metadata.name, patch)
    faults.reached(metadata.namespace, f"{point}/written")


def acknowledge(resource: Object[Any], status: Manifest) -> None:
    """A new object's first status (reconcile.common.accepted), only over the version read:
    once anything else wrote the object, the API answers 409 and the write is dropped, as it
    is for an object deleted since (404). Past no kill point: losing it loses nothing, the
    reconcile writes its own status anyway."""
    metadata = resource.metadata
    try:
        answer = custom().patch_namespaced_custom_object_status(
            constants.API_GROUP, constants.API_VERSION, metadata.namespace,
            resource.names.plural, metadata.name,
            {"metadata": {"resourceVersion": metadata.resource_version}, "status": status},
            _preload_content=False)  # the object it answers with is not needed: not parsed
        answer.drain_conn()  # read to its end: a connection back in the pool half-read
        answer.release_conn()  # would hand the rest to the next request as its answer
    except ApiException as error:
        if error.status not in (404, 409):
            raise


def event_name(involved: Object[Any], reason: str, message: str) -> str:
    """One name per object, reason and message: the same Event posted again (two handlers
    that saw the same transition, or a condition that holds on) is counted on one object,
    as Kubernetes' own event recorder aggregates them."""
    key = f"{involved.metadata.uid}/{reason}/{message[:1024]}".encode()
    return f"{involved.metadata.name}.{hashlib.sha256(key).hexdigest()[:16]}"


def post_event(involved: Object[Any], event_type: str, reason: str, message: str) -> None:
    """A core/v1 Event on the object, as `kubectl describe` shows them; posted again, its
    count and lastTimestamp go up."""
    metadata = involved.metadata
    now = datetime.datetime.now(datetime.UTC).isoformat()
    name = event_name(involved, reason, message)
    event = {
        "metadata": {"name": name, "namespace": metadata.namespace},
        "involvedObject": {
            "apiVersion": constants.API_GROUP_VERSION, "kind": involved.names.kind,
            "name": metadata.name, "namespace": metadata.namespace, "uid": metadata.uid,
        },
        "type": event_type,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": FIELD_MANAGER},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "reportingComponent": FIELD_MANAGER,
    }
    try:
        try:
            post(f"/api/v1/namespaces/{metadata.namespace}/events", event)
        except ApiException as error:
            if error.status != 409:
                raise
            posted = core().read_namespaced_event(name, metadata.namespace)
            core().patch_namespaced_event(name, metadata.namespace, {
                "count": (posted.count or 1) + 1, "lastTimestamp": now})
    except ApiException as error:  # an Event is never worth failing a reconcile
        logger.warning("Could not post event %s on %s: %s", reason, metadata.name, error.reason)
        return
    faults.reached(metadata.namespace, f"{involved.names.kind}/event/{reason}")
