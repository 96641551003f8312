"""Drift of a ModelDeployment over all its replicas: their /drift windows, added up.

Pure: the reconciler fetches each ready replica's `DriftWindow` (GET /drift on its pod IP)
and hands the answers here. Only windows of the version the deployment serves count (during
a rollout old replicas still answer); their counts are added (`mlcycle_contract.drift.merge`)
and scored against that version's reference with the spec's thresholds, so the verdict is
the deployment's, not one pod's view. The result is `status.drift`, the `Drifted` condition
and an Event when drift is first detected (or when the version turns out to have no
reference: it is served unmonitored).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from mlcycle.objects import ModelDeployment
from mlcycle.reconcile.common import Event, Outcome, condition
from mlcycle_contract.api.common import set_condition
from mlcycle_contract.api.modeldeployment import (
    DriftStatus,
    ModelDeploymentConditionType,
    ModelDeploymentStatus,
    Monitoring,
)
from mlcycle_contract.drift import (
    DriftCounts,
    DriftReference,
    DriftScores,
    DriftThresholds,
    DriftWindow,
    FeatureKind,
    FeatureScore,
    merge,
    score,
)

DRIFTED = ModelDeploymentConditionType.DRIFTED
DRIFT_DETECTED, NO_DRIFT, WINDOW_TOO_SMALL = "DriftDetected", "NoDrift", "WindowTooSmall"
NO_REFERENCE, DRIFT_UNAVAILABLE, DRIFT_CLEARED = "NoReference", "DriftUnavailable", "DriftCleared"


@dataclass(frozen=True)
class MergedDrift:
    """The deployment's drift, how many replicas it was merged from, and the added counts
    with their reference (what a plot draws)."""

    scores: DriftScores
    replicas: int
    reference: DriftReference
    counts: DriftCounts


def merge_replicas(
    windows: Sequence[DriftWindow], version: str, thresholds: DriftThresholds
) -> MergedDrift | None:
    """Scores of the added counts of the replicas serving `version`; None if none does."""
    serving = [window for window in windows if window.version == version]
    if not serving:
        return None
    reference = serving[0].reference
    if any(window.reference != reference for window in serving[1:]):
        raise ValueError(f"replicas of version {version} report different drift references")
    counts = merge(window.counts for window in serving)
    return MergedDrift(scores=score(reference, counts, thresholds), replicas=len(serving),
                       reference=reference, counts=counts)


@dataclass(frozen=True)
class ReplicaAnswer:
    """What one ready replica answered on /drift: its window, that its version has no
    reference (the server's message), or why it could not be read."""

    pod: str
    window: DriftWindow | None = None
    no_reference: str | None = None
    error: str | None = None


def thresholds(monitoring: Monitoring) -> DriftThresholds:
    return DriftThresholds(
        psi=monitoring.psi_threshold,
        jensen_shannon=monitoring.jensen_shannon_threshold,
        missing_shift=monitoring.missing_shift_threshold,
        unseen_share=monitoring.unseen_share_threshold,
        min_rows=monitoring.min_rows,
    )


def drift_outcome(deployment: ModelDeployment, answers: Sequence[ReplicaAnswer],
                  at: datetime, training_job_uid: str | None = None,
                  ) -> Outcome[ModelDeploymentStatus] | None:
    """The status with the served version's drift, and the Events to post; None when no
    replica of that version answered (nothing new to say)."""
    status, spec = deployment.status, deployment.spec
    version = status.served_version
    if version is None or not answers:
        return None
    model = f"model {spec.model.name} version {version}"
    windows = [a.window for a in answers if a.window is not None]
    try:
        merged = merge_replicas(windows, str(version), thresholds(spec.monitoring))
    except ValueError as error:
        merged, answers = None, [ReplicaAnswer("", error=str(error))]
    if merged is None:
        refusal = next((a for a in answers if a.no_reference is not None), None)
        if refusal is not None:
            return _unmonitored(deployment, NO_REFERENCE, (
                f"spec.monitoring.drift: {model} has no drift reference (it was trained before "
                f"references existed); it is served unmonitored ({refusal.no_reference})"), None)
        failed = next((a for a in answers if a.error is not None), None)
        if failed is None:
            return None
        return _unmonitored(deployment, DRIFT_UNAVAILABLE, (
            f"spec.monitoring.drift: could not read the drift window of {model} on any "
            f"replica: {failed.pod}: {failed.error}"), status.drift)
    previous = status.drift if status.drift is not None and status.drift.version == version \
        else None
    drift = drift_status(previous, version, merged, _oldest(windows, str(version)), at)
    drift = drift.model_copy(update={"training_job_uid": training_job_uid})
    reason, message = drift_verdict(drift, spec.monitoring, model)
    conditions = set_condition(status.conditions, condition(
        DRIFTED, drift.detected, reason, message, deployment.metadata.generation))
    events = []
    if drift.detected and not (previous is not None and previous.detected):
        events.append(Event("Warning", DRIFT_DETECTED, message))
    elif previous is not None and previous.detected and reason == NO_DRIFT:
        events.append(Event("Normal", DRIFT_CLEARED, message))
    new = status.model_copy(update={"drift": drift, "conditions": conditions})
    return Outcome(status=new, events=events)


def drift_status(previous: DriftStatus | None, version: int, merged: MergedDrift,
                 oldest_seconds: float | None, at: datetime) -> DriftStatus:
    """status.drift from the merged window; `previous` is the same version's last one (its
    detection time and plot carry over while drift persists)."""
    detected = merged.scores.detected
    detected_time = previous.detected_time if previous is not None else None
    if detected and not (previous is not None and previous.detected):
        detected_time = at
    return DriftStatus(
        version=version,
        rows=merged.scores.rows,
        since=None if oldest_seconds is None else at - timedelta(seconds=round(oldest_seconds)),
        replicas=merged.replicas,
        detected=detected,
        detected_time=detected_time,
        checked_time=at,
        features=merged.scores.features,
        plot=previous.plot if previous is not None else None,
    )


def drift_verdict(drift: DriftStatus, monitoring: Monitoring, model: str) -> tuple[str, str]:
    """The Drifted condition's reason and message, naming the drifted features."""
    window = f"{drift.rows} rows from {drift.replicas} replica(s)"
    if drift.detected:
        drifted = "; ".join(describe(f) for f in drift.features if f.drifted)
        return DRIFT_DETECTED, f"{model}: drift in {drifted} (over {window})"
    if drift.rows < monitoring.min_rows:
        return WINDOW_TOO_SMALL, (f"{model}: {window}, fewer than spec.monitoring.minRows "
                                  f"{monitoring.min_rows}; no drift detected on so few")
    return NO_DRIFT, f"{model}: no feature drifted over {window}"


def describe(feature: FeatureScore) -> str:
    """One feature's scores in words: `petal_width (PSI 1.23)`."""
    measure = "PSI" if feature.kind is FeatureKind.NUMERIC else "Jensen-Shannon"
    parts = [] if feature.score is None else [f"{measure} {feature.score:.3g}"]
    if feature.missing_shift:
        parts.append(f"missing rate {feature.missing_shift:+.3g}")
    if feature.unseen_share:
        parts.append(f"unseen share {feature.unseen_share:.3g}")
    return f"{feature.name} ({', '.join(parts)})" if parts else feature.name


def _oldest(windows: Sequence[DriftWindow], version: str) -> float | None:
    ages = [w.oldest_seconds for w in windows if w.version == version
            and w.oldest_seconds is not None]
    return max(ages) if ages else None


def _unmonitored(deployment: ModelDeployment, reason: str, message: str,
                 drift: DriftStatus | None) -> Outcome[ModelDeploymentStatus]:
    """Drifted=Unknown: the served version is not monitored; an Event when that is news."""
    status = deployment.status
    before = next((c for c in status.conditions if c.type == DRIFTED), None)
    conditions = set_condition(status.conditions, condition(
        DRIFTED, None, reason, message, deployment.metadata.generation))
    news = before is None or before.reason != reason
    new = status.model_copy(update={"drift": drift, "conditions": conditions})
    return Outcome(status=new, events=[Event("Warning", reason, message)] if news else [])


def without_drift(status: ModelDeploymentStatus) -> ModelDeploymentStatus:
    """The status with monitoring off: no drift and no Drifted condition."""
    return status.model_copy(update={
        "drift": None, "conditions": [c for c in status.conditions if c.type != DRIFTED]})
