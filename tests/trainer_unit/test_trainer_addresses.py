"""The address policy of url sources: what is always refused, what the deny list adds, and
where the allow list wins, for IPv4, IPv6 and IPv6 addresses that carry an IPv4 one."""

from __future__ import annotations

import ipaddress

import pytest

from mlcycle_contract.environment import SOURCE_ALLOW_CIDRS, SOURCE_DENY_CIDRS, networks
from mlcycle_trainer.addresses import AddressPolicy
from mlcycle_trainer.errors import InvalidInput

CLUSTER = AddressPolicy(denied=networks("10.96.0.0/12,10.244.0.1"))


def refusal(policy: AddressPolicy, address: str) -> str | None:
    return policy.refusal(ipaddress.ip_address(address))


@pytest.mark.parametrize(("address", "network"), [
    ("127.0.0.1", "127.0.0.0/8"),
    ("127.8.9.10", "127.0.0.0/8"),
    ("169.254.169.254", "169.254.0.0/16"),  # cloud metadata
    ("0.0.0.0", "0.0.0.0/8"),
    ("224.0.0.251", "224.0.0.0/4"),
    ("255.255.255.255", "240.0.0.0/4"),
    ("::1", "::/96"),
    ("::", "::/96"),
    ("fe80::1", "fe80::/10"),
    ("ff02::1", "ff00::/8"),
])
def test_loopback_link_local_unspecified_and_multicast_are_always_refused(
    address: str, network: str
) -> None:
    assert refusal(AddressPolicy(), address) == f"{address} is in {network}"


@pytest.mark.parametrize(("address", "carried"), [
    ("::ffff:127.0.0.1", "127.0.0.1"),  # IPv4-mapped
    ("::ffff:169.254.169.254", "169.254.169.254"),
    ("2002:a9fe:a9fe::1", "169.254.169.254"),  # 6to4
    ("64:ff9b::a9fe:a9fe", "169.254.169.254"),  # NAT64
])
def test_an_ipv6_address_is_refused_for_the_ipv4_address_it_carries(
    address: str, carried: str
) -> None:
    reason = refusal(AddressPolicy(), address)
    assert reason is not None and reason.startswith(f"{carried} is in ")


@pytest.mark.parametrize("address", ["93.184.215.14", "10.244.0.7", "2606:4700::6810:84e5"])
def test_other_addresses_are_permitted(address: str) -> None:
    assert refusal(CLUSTER, address) is None


@pytest.mark.parametrize(("address", "network"), [
    ("10.96.0.1", "10.96.0.0/12"),
    ("10.111.255.254", "10.96.0.0/12"),
    ("10.244.0.1", "10.244.0.1/32"),
    ("::ffff:10.96.0.10", "10.96.0.0/12"),
])
def test_the_deny_list_adds_the_service_range_and_the_apiserver(
    address: str, network: str
) -> None:
    reason = refusal(CLUSTER, address)
    assert reason is not None and reason.endswith(f" is in {network}")


def test_the_allow_list_wins_only_where_it_is_explicit() -> None:
    policy = AddressPolicy(denied=networks("10.96.0.0/12"),
                           allowed=networks("10.96.5.0/24,127.0.0.1"))
    assert refusal(policy, "10.96.5.9") is None
    assert refusal(policy, "10.96.6.1") is not None
    assert refusal(policy, "127.0.0.1") is None
    assert refusal(policy, "::ffff:127.0.0.1") is None
    assert refusal(policy, "127.0.0.2") is not None
    assert refusal(policy, "169.254.169.254") is not None


def test_the_policy_is_read_from_the_environment() -> None:
    policy = AddressPolicy.from_environment({SOURCE_DENY_CIDRS.name: " 10.96.0.0/12, fd00::/8",
                                             SOURCE_ALLOW_CIDRS.name: "10.96.0.5"})
    assert policy == AddressPolicy(denied=networks("10.96.0.0/12,fd00::/8"),
                                   allowed=networks("10.96.0.5/32"))
    assert AddressPolicy.from_environment({}) == AddressPolicy()


def test_a_malformed_network_names_its_variable() -> None:
    with pytest.raises(InvalidInput) as excinfo:
        AddressPolicy.from_environment({SOURCE_DENY_CIDRS.name: "10.96.0.1/12"})
    assert excinfo.value.reason == "InvalidEnvironment"
    assert excinfo.value.message.startswith(f"{SOURCE_DENY_CIDRS.name}: ")
