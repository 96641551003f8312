"""One local cluster per machine: a second checkout refuses to start its own beside a running
one (both nodes would claim kubelet's ports, the CNI bridge and kube-proxy's chains)."""

from __future__ import annotations

from pathlib import Path

import pytest

from localkube import cluster
from localkube.paths import LocalPaths


@pytest.fixture
def record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    owner = tmp_path / "owner"
    monkeypatch.setattr(cluster, "_owner_record", lambda: owner)
    return owner


def test_a_running_cluster_of_another_checkout_is_refused_by_name(
    record: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other" / ".local"
    record.write_text(str(other))
    monkeypatch.setattr(cluster, "is_running", lambda state, paths: paths.root == other)
    with pytest.raises(RuntimeError, match=f"from {other} is running on this machine"):
        cluster._refuse_if_another_checkout_runs(LocalPaths(tmp_path / "mine" / ".local"))


def test_no_record_a_stopped_one_or_our_own_is_no_obstacle(
    record: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = LocalPaths(tmp_path / "mine" / ".local")
    cluster._refuse_if_another_checkout_runs(mine)  # no record at all
    record.write_text(str(tmp_path / "stopped" / ".local"))
    cluster._refuse_if_another_checkout_runs(mine)  # its cluster.json is gone
    record.write_text(str(mine.root))
    monkeypatch.setattr(cluster, "is_running", lambda state, paths: True)
    cluster._refuse_if_another_checkout_runs(mine)  # ours: up() reuses or restarts it
