"""How `python -m mlcycle` decides between standalone and peering: what the chart sets for
its replicas, and what a plain local process gets without it."""

from __future__ import annotations

from mlcycle.__main__ import Peering, operator_settings, peering_from_settings, peering_object
from mlcycle.settings import Settings


def peering_from_env(environ: dict[str, str], started_ms: int) -> Peering | None:
    return peering_from_settings(Settings.from_env(environ), started_ms)


def test_standalone_unless_a_peering_is_named() -> None:
    assert peering_from_env({}, started_ms=1) is None
    assert peering_from_env({"MLCYCLE_PEERING": "  "}, started_ms=1) is None


def test_the_oldest_replica_has_the_highest_priority() -> None:
    older = peering_from_env({"MLCYCLE_PEERING": "mlc"}, started_ms=1_000)
    younger = peering_from_env({"MLCYCLE_PEERING": "mlc"}, started_ms=2_000)
    assert older is not None and younger is not None
    assert older.priority > younger.priority
    assert older.lifetime == Settings().peering_lifetime and older.name == "mlc"


def test_explicit_priority_and_lifetime_win() -> None:
    peering = peering_from_env({"MLCYCLE_PEERING": "mlc", "MLCYCLE_PEERING_PRIORITY": "666",
                                "MLCYCLE_PEERING_LIFETIME": "20"}, started_ms=5)
    assert peering is not None and (peering.priority, peering.lifetime) == (666, 20)


def test_peering_objects_per_namespace_or_cluster_wide() -> None:
    assert peering_object("mlc", "team-a") == {
        "apiVersion": "kopf.dev/v1", "kind": "KopfPeering",
        "metadata": {"name": "mlc", "namespace": "team-a"}}
    assert peering_object("mlc", None)["kind"] == "ClusterKopfPeering"


def test_scanning_is_off_only_when_asked_and_lifetime_follows_the_peering() -> None:
    assert operator_settings(Settings(), None).scanning.disabled is False
    environ = {"MLCYCLE_PEERING": "mlc", "MLCYCLE_PEERING_LIFETIME": "25",
               "MLCYCLE_SCAN_CLUSTER": "false"}
    peering = peering_from_settings(Settings.from_env(environ), 1)
    settings = operator_settings(Settings.from_env(environ), peering)
    assert settings.scanning.disabled is True and settings.peering.lifetime == 25
