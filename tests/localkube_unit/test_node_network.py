"""Pod IP allocation and sandbox names (localkube.node.network)."""

from __future__ import annotations

import pytest

from localkube.node.network import IpPool, SandboxError, SandboxNames, allocate_ip, candidate_ips


def test_candidates_skip_network_gateway_broadcast_and_host() -> None:
    ips = candidate_ips("10.244.0.0/24", "10.244.0.1")
    assert ips[0] == "10.244.0.2"
    assert ips[-1] == "10.244.0.254"
    assert len(ips) == 253
    assert "10.244.0.9" not in candidate_ips("10.244.0.0/24", "10.244.0.9")


def test_round_robin_and_preference() -> None:
    ips = ["a", "b", "c"]
    assert allocate_ip(ips, [], last=None, preferred=None) == "a"
    assert allocate_ip(ips, ["a"], last="a", preferred=None) == "b"
    assert allocate_ip(ips, [], last="b", preferred=None) == "c"
    assert allocate_ip(ips, ["a"], last="c", preferred=None) == "b"
    assert allocate_ip(ips, [], last="a", preferred="c") == "c"
    assert allocate_ip(ips, ["c"], last="a", preferred="c") == "b"
    assert allocate_ip(ips, ["a", "b", "c"], last=None, preferred=None) is None


def test_pool_does_not_reuse_a_released_address_at_once() -> None:
    pool = IpPool("10.244.0.0/29", "10.244.0.1")
    first = pool.acquire()
    pool.release(first)
    assert pool.acquire() != first


def test_pool_exhaustion() -> None:
    pool = IpPool("10.244.0.0/29", "10.244.0.1")
    taken = {pool.acquire() for _ in range(5)}
    assert taken == {f"10.244.0.{i}" for i in range(2, 7)}
    with pytest.raises(SandboxError):
        pool.acquire()


def test_names_fit_interface_limits() -> None:
    names = SandboxNames.for_pod("58d81a48-b601-45d3-b63a-2a3973f1b4ae")
    assert names.netns == "lkpod-58d81a48-b601-45d3-b63a-2a3973f1b4ae"
    assert len(names.host_veth) <= 15
    assert len(names.peer_veth) <= 15
    assert names.host_veth != names.peer_veth
