"""Drift of a ModelDeployment over all its replicas: their /drift windows, added up.

Pure: the reconciler fetches each ready replica's `DriftWindow` (GET /drift on its pod IP)
and hands them here. Only windows of the version the deployment serves count (during a
rollout old replicas still answer); their counts are added (`mlcycle_contract.drift.merge`)
and scored against that version's reference, so the verdict is the deployment's, not one
pod's view.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mlcycle_contract.drift import DriftScores, DriftThresholds, DriftWindow, merge, score


@dataclass(frozen=True)
class MergedDrift:
    """The deployment's drift, and how many replicas it was merged from."""

    scores: DriftScores
    replicas: int


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
    return MergedDrift(scores=score(reference, counts, thresholds), replicas=len(serving))
