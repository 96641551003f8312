"""ModelDeployment: resolve the model version (following an alias), refuse a model in a format
the server does not load (`UnsafeModelFormat`) or trained in another runtime, apply the
Deployment, Service and autoscaler, and report the rollout.

A model that cannot be served (missing, unsafe, or trained in another runtime) never touches
the existing Deployment: the version already serving keeps serving.

With spec.monitoring.drift, `check_drift` reads GET /drift on every ready replica of the
served version and `mlcycle.drift` turns their added counts into status.drift and the
Drifted condition.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import httpx
from pydantic import ValidationError

from mlcycle import drift, drift_plot, kube, registry, tenancy, unsupported
from mlcycle.alias_board import SharedBoard
from mlcycle.builders.modeldeployment import (
    build_autoscaler,
    build_deployment,
    build_service,
    selector_labels,
    service_url,
)
from mlcycle.objects import Invalid, ModelDeployment, Object
from mlcycle.reconcile.common import (
    IMAGE_NOT_ALLOWED,
    INVALID_SPEC,
    MODEL_ACCESS_DENIED,
    Manifest,
    Outcome,
    condition,
    image_refusal,
    now,
    outcome,
)
from mlcycle.registry import ModelVersion
from mlcycle.runtime import parse_runtime, runtime_mismatch
from mlcycle.settings import Settings
from mlcycle_contract import constants, environment
from mlcycle_contract.api.common import (
    Condition,
    ConditionStatus,
    ConditionType,
    find_condition,
    set_condition,
)
from mlcycle_contract.api.modeldeployment import (
    HISTORY_LIMIT,
    DriftPlot,
    DriftStatus,
    ModelDeploymentConditionType,
    ModelDeploymentPhase,
    ModelDeploymentStatus,
    ModelRuntime,
    RolloutRecord,
)
from mlcycle_contract.drift import DRIFT_PATH, DriftWindow
from mlcycle_contract.model_format import (
    UNSAFE_MODEL_FORMAT,
    unsafe_format,
    unsafe_format_message,
)
from mlcycle_contract.runtime import current_runtime

Types = ModelDeploymentConditionType
logger = logging.getLogger(__name__)


def reconcile_model_deployment(deployment: ModelDeployment | Invalid[ModelDeploymentStatus],
                               settings: Settings) -> Outcome[ModelDeploymentStatus]:
    """Resolve, check, apply, report. MLflow errors other than 'not found' propagate, so the
    handler retries them as transient."""
    resolved = resolve_model(deployment, settings)
    if isinstance(resolved, Outcome):
        return resolved
    assert not isinstance(deployment, Invalid)  # resolve_model refuses every Invalid
    return roll_out(deployment, resolved, settings)


RESYNC_SECONDS = 300.0


@dataclass(frozen=True)
class Followed:
    """What a ModelDeployment's timer last did for its alias: for which spec (model name,
    alias, generation), at which version on the board, with which model resolved (None:
    refused), and when."""

    key: tuple[str, str, int]
    version: int | None
    model: ModelVersion | None
    at: float


def follow_alias(deployment: ModelDeployment, last: Followed | None, board: SharedBoard,
                 settings: Settings, clock: float,
                 ) -> tuple[Outcome[ModelDeploymentStatus], Followed] | None:
    """CD at the cost of the shared board: resolve and roll out when the alias's version
    moved (or the spec changed); every RESYNC_SECONDS re-apply the resolved version without
    asking MLflow (an edited Deployment is put back) or, if it was refused, resolve again.
    None when there is nothing to do."""
    spec = deployment.spec
    assert spec.model.alias is not None
    key = (spec.model.name, spec.model.alias, deployment.metadata.generation)
    version = board.version(key[:2], max_age=spec.poll_interval_seconds)
    if last is not None and last.key == key and last.version == version:
        if clock - last.at < RESYNC_SECONDS:
            return None
        if last.model is not None:
            return roll_out(deployment, last.model, settings), replace(last, at=clock)
    resolved = resolve_model(deployment, settings)
    if isinstance(resolved, Outcome):
        return resolved, Followed(key, version, None, clock)
    return roll_out(deployment, resolved, settings), Followed(key, version, resolved, clock)


def resolve_model(deployment: ModelDeployment | Invalid[ModelDeploymentStatus],
                  settings: Settings) -> ModelVersion | Outcome[ModelDeploymentStatus]:
    """The model version to serve, checked (its format, its runtime), or the refusal."""
    refusal = spec_refusal(deployment, settings)
    if refusal is not None:
        return refused(deployment, *refusal)
    assert not isinstance(deployment, Invalid)  # spec_refusal refuses every Invalid
    spec, generation = deployment.spec, deployment.metadata.generation
    tenant = tenancy.ensure_tenant(deployment.metadata.namespace, settings)
    try:
        model = registry.resolve(settings.operator_tracking_uri, tenant.registry_user,
                                 spec.model.name, spec.model.version, spec.model.alias)
    except registry.ModelNotFound as missing:
        return refused(deployment, "ModelNotFound", f"spec.model: {missing}")
    except registry.ModelAccessDenied as denied:
        return refused(deployment, MODEL_ACCESS_DENIED, f"spec.model: {denied}")
    problem = unsafe_format(registry.model_file(settings.operator_tracking_uri, model))
    if problem is not None:
        return refused(deployment, UNSAFE_MODEL_FORMAT, unsafe_format_message(
            f"model {model.name} version {model.version}", problem) + "; it was not rolled out")
    serving = parse_runtime(settings.serving_runtime) or current_runtime()
    mismatch = runtime_mismatch(model.runtime, serving)
    if mismatch:
        return refused(deployment, "RuntimeMismatch",
                       f"model {model.name} version {model.version} was not rolled out: "
                       f"{mismatch}",
                       condition(Types.RUNTIME_MISMATCH, True, "RuntimeMismatch", mismatch,
                                 generation))
    return model


def roll_out(deployment: ModelDeployment, model: ModelVersion,
             settings: Settings) -> Outcome[ModelDeploymentStatus]:
    """Apply the serving Deployment, Service and autoscaler of a resolved version; report."""
    spec, namespace, name = deployment.spec, deployment.metadata.namespace, deployment.metadata.name
    applied = kube.apply(build_deployment(deployment, model, settings))
    kube.apply(build_service(deployment))
    if spec.autoscaling.enabled:
        kube.apply(build_autoscaler(deployment))
    else:
        kube.delete_if_exists("autoscaling/v2", "HorizontalPodAutoscaler", namespace, name)
    status = deployment.status.model_copy(update={
        "conditions": [c for c in deployment.status.conditions
                       if c.type != Types.RUNTIME_MISMATCH],
        "runtime": ModelRuntime.model_validate(model.runtime)})
    if not spec.monitoring.drift:
        status = drift.without_drift(status)
    return deployment_outcome(replace(deployment, status=status), applied)


def spec_refusal(
    deployment: ModelDeployment | Invalid[ModelDeploymentStatus], settings: Settings,
) -> tuple[str, str] | None:
    """Pure: the reason and message to refuse the spec with, if it cannot be served as is."""
    if isinstance(deployment, Invalid):
        return INVALID_SPEC, deployment.problem
    fields = unsupported.model_deployment_unsupported(deployment.spec)
    if fields:
        return unsupported.REASON, unsupported.unsupported_message(fields)
    image_problem = image_refusal(deployment.spec.image, settings)
    if image_problem:
        return IMAGE_NOT_ALLOWED, image_problem
    return None


def reports_deployment_events(
    deployment: ModelDeployment | Invalid[ModelDeploymentStatus], settings: Settings,
) -> bool:
    """Pure: whether its Deployment's events may set its status. Not while this generation is
    refused (its spec, a model not found, a foreign runtime): the refusal stands until a
    reconcile lifts it, whatever the Deployment of the version still serving does."""
    if spec_refusal(deployment, settings) is not None:
        return False
    degraded = find_condition(deployment.status.conditions, ConditionType.DEGRADED)
    return not (degraded is not None and degraded.status == ConditionStatus.TRUE
                and degraded.observed_generation == deployment.metadata.generation)


def refused(deployment: Object[ModelDeploymentStatus], reason: str, message: str,
            *extra: Condition) -> Outcome[ModelDeploymentStatus]:
    """Report why nothing new rolls out; the version already serving (if any) keeps serving,
    so the phase is Degraded rather than Failed, but Ready is False until the spec is met."""
    status, generation = deployment.status, deployment.metadata.generation
    existing = kube.read("apps/v1", "Deployment", deployment.metadata.namespace,
                         deployment.metadata.name)
    serving = status.served_version is not None and existing is not None
    conditions = status.conditions
    for refusal in (condition(ConditionType.READY, False, reason, message, generation),
                    condition(ConditionType.DEGRADED, True, reason, message, generation),
                    *extra):
        conditions = set_condition(conditions, refusal)
    new = status.model_copy(update={
        "phase": ModelDeploymentPhase.DEGRADED if serving else ModelDeploymentPhase.FAILED,
        "observed_generation": generation,
        "conditions": conditions,
    })
    return outcome(status.conditions, new, ConditionType.DEGRADED)


def deployment_outcome(owner: Object[ModelDeploymentStatus],
                       deployment: Manifest) -> Outcome[ModelDeploymentStatus]:
    """Pure: the ModelDeployment's status from its Deployment."""
    status, generation = owner.status, owner.metadata.generation
    labels = deployment["metadata"].get("labels") or {}
    target = int(labels[constants.LABEL_MODEL_VERSION])
    model_name = labels[constants.LABEL_MODEL_NAME]
    state = deployment.get("status") or {}
    wanted = (deployment.get("spec") or {}).get("replicas", 1)
    ready = int(state.get("readyReplicas") or 0)
    rolled_out = (
        (state.get("observedGeneration") or 0) >= deployment["metadata"].get("generation", 0)
        and int(state.get("updatedReplicas") or 0) == wanted
        and int(state.get("replicas") or 0) == wanted
        and ready == wanted
    )
    history = list(status.history)
    if not history or history[0].version != target:
        history.insert(0, RolloutRecord(version=target, model_uri=f"models:/{model_name}/{target}",
                                        started_at=now()))
    if rolled_out and history[0].completed_at is None:
        history[0] = history[0].model_copy(update={"completed_at": now()})
    served = target if rolled_out else status.served_version
    available = ready > 0 or wanted == 0
    conditions = status.conditions
    for type_, value, reason, message in (
        (Types.AVAILABLE, available, "MinimumReplicasAvailable" if available
         else "NoReplicasAvailable", f"{ready}/{wanted} replicas ready"),
        (ConditionType.PROGRESSING, not rolled_out,
         "RollingOut" if not rolled_out else "RolloutComplete",
         f"rolling out version {target}" if not rolled_out else f"version {target} serves"),
        (ConditionType.READY, rolled_out and available,
         "Serving" if rolled_out else "RollingOut",
         f"model {model_name} version {served} on {ready} replicas" if rolled_out
         else f"rolling out version {target}: {ready}/{wanted} ready"),
        (ConditionType.DEGRADED, False, "AsExpected", "serving the model version asked for"),
    ):
        conditions = set_condition(conditions, condition(type_, value, reason, message,
                                                         generation))
    new = status.model_copy(update={
        "phase": ModelDeploymentPhase.AVAILABLE if rolled_out
        else ModelDeploymentPhase.PROGRESSING,
        "served_version": served,
        "model_uri": f"models:/{model_name}/{served}" if served else None,
        "replicas": wanted,
        "ready_replicas": ready,
        "selector": ",".join(f"{k}={v}" for k, v in
                             selector_labels(owner.metadata.name).items()),
        "url": service_url(owner.metadata),
        "history": history[:HISTORY_LIMIT],
        "observed_generation": generation,
        "conditions": conditions,
    })
    return outcome(status.conditions, new)


DRIFT_TIMEOUT_SECONDS = 5.0


def check_drift(deployment: ModelDeployment,
                settings: Settings) -> Outcome[ModelDeploymentStatus] | None:
    """spec.monitoring.drift: read every ready replica of the served version and report the
    drift of their added counts. Nothing while the spec is refused or nothing serves."""
    version = deployment.status.served_version
    if (not deployment.spec.monitoring.drift or version is None
            or spec_refusal(deployment, settings) is not None):
        return None
    labels = {**selector_labels(deployment.metadata.name),
              constants.LABEL_MODEL_VERSION: str(version)}
    replicas = ready_pod_addresses(kube.pods(deployment.metadata.namespace, labels))
    answers = [read_drift(pod, address) for pod, address in replicas]
    result = drift.drift_outcome(deployment, answers, now(),
                                 training_job_uid(deployment, answers, settings))
    found = result.status.drift if result is not None else None
    if result is None or found is None or not any(
            e.reason == drift.DRIFT_DETECTED for e in result.events):
        return result
    windows = [a.window for a in answers if a.window is not None]
    plot = log_drift_plot(deployment, windows, found, settings)
    return replace(result, status=result.status.model_copy(
        update={"drift": found.model_copy(update={"plot": plot})}))


def training_job_uid(deployment: ModelDeployment, answers: list[drift.ReplicaAnswer],
                     settings: Settings) -> str | None:
    """The TrainingJob that produced the served version: from the last check of the same
    version, else from the version's lineage tag in the registry."""
    known, version = deployment.status.drift, deployment.status.served_version
    if known is not None and known.version == version and known.training_job_uid:
        return known.training_job_uid
    if version is None or not any(a.window is not None for a in answers):
        return None
    return registry.version_lineage(settings.operator_tracking_uri,
                                    deployment.spec.model.name, version).training_job_uid


def log_drift_plot(deployment: ModelDeployment, windows: list[DriftWindow],
                   found: DriftStatus, settings: Settings) -> DriftPlot | None:
    """A first detection's reference-versus-live plot (PNG) and its numbers (JSON), logged to
    the served version's training run; None (and a log line) if MLflow does not take them:
    the detection stands without its plot."""
    model = deployment.spec.model.name
    merged = drift.merge_replicas(windows, str(found.version),
                                  drift.thresholds(deployment.spec.monitoring))
    if merged is None:
        return None
    features = drift_plot.shares(merged.reference, merged.counts, merged.scores)
    stem = drift_plot.file_stem(found.version, found.checked_time)
    title = (f"model {model} version {found.version}: training against the last {found.rows} "
             f"rows of {found.replicas} replica(s), {found.checked_time:%Y-%m-%d %H:%M} UTC")
    try:
        run_id = registry.version_lineage(settings.operator_tracking_uri, model,
                                          found.version).run_id
        registry.log_files(settings.operator_tracking_uri, run_id, {
            f"{stem}.png": drift_plot.draw(features, title),
            f"{stem}.json": drift_plot.numbers(features, found.version, found.rows,
                                               found.checked_time)})
    except (registry.MlflowError, OSError) as error:
        logger.warning("Drift plot of %s version %s not logged: %s", model, found.version, error)
        return None
    return DriftPlot(run_id=run_id, artifact_path=f"{stem}.png")


def ready_pod_addresses(pods: list[Manifest]) -> list[tuple[str, str]]:
    """Pure: (name, IP) of the pods that are ready and not being deleted."""
    ready = []
    for pod in pods:
        state = pod.get("status") or {}
        conditions = state.get("conditions") or []
        if (pod["metadata"].get("deletionTimestamp") is None and state.get("podIP")
                and any(c.get("type") == "Ready" and c.get("status") == "True"
                        for c in conditions)):
            ready.append((pod["metadata"]["name"], state["podIP"]))
    return ready


def read_drift(pod: str, address: str) -> drift.ReplicaAnswer:
    """One replica's GET /drift: its window, its NoReference refusal, or the error."""
    url = f"http://{address}:{environment.SERVING_PORT}{DRIFT_PATH}"
    try:
        response = httpx.get(url, timeout=DRIFT_TIMEOUT_SECONDS)
    except httpx.HTTPError as error:
        return drift.ReplicaAnswer(pod, error=f"{type(error).__name__}: {error}")
    if response.status_code == 200:
        try:
            return drift.ReplicaAnswer(
                pod, window=DriftWindow.model_validate_json(response.content))
        except ValidationError as error:
            return drift.ReplicaAnswer(pod, error=f"an unreadable drift window: {error}")
    message = _error_message(response)
    if response.status_code == 409 and message.startswith(drift.NO_REFERENCE):
        return drift.ReplicaAnswer(pod, no_reference=message)
    return drift.ReplicaAnswer(pod, error=f"HTTP {response.status_code}: {message}")


def _error_message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", ""))[:512]
    except ValueError:
        return response.text[:512]
