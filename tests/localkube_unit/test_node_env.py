"""Container environment resolution (localkube.node.env), without a cluster."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from localkube.node.env import (
    ConfigError,
    expand,
    field_value,
    resolve_env,
    resource_value,
    runtime_env,
    service_env,
)

JSON = dict[str, Any]


class FakeLookups:
    def __init__(self, secrets: dict[str, dict[str, str]], config_maps: dict[str, dict[str, str]]):
        self.secrets = secrets
        self.config_maps = config_maps

    def get_secret(self, namespace: str, name: str) -> JSON | None:
        if name not in self.secrets:
            return None
        data = {k: base64.b64encode(v.encode()).decode() for k, v in self.secrets[name].items()}
        return {"data": data}

    def get_config_map(self, namespace: str, name: str) -> JSON | None:
        if name not in self.config_maps:
            return None
        return {"data": self.config_maps[name]}


LOOKUPS = FakeLookups({"db": {"password": "s3cret"}}, {"cfg": {"mode": "fast", "level": "3"}})
POD: JSON = {
    "metadata": {
        "name": "web-1",
        "namespace": "team",
        "uid": "u-1",
        "labels": {"app": "web", "tier": "front"},
        "annotations": {"note": "hi"},
    },
    "spec": {
        "nodeName": "localnode",
        "serviceAccountName": "runner",
        "containers": [
            {"name": "c", "resources": {"limits": {"memory": "256Mi", "cpu": "500m"}}},
        ],
    },
    "status": {"podIP": "10.244.0.7", "hostIP": "10.244.0.1"},
}


def resolve(container: JSON) -> dict[str, str]:
    env: dict[str, str] = resolve_env(
        POD,
        {"name": "c", **container},
        LOOKUPS,
        services={"SVC": "x"},
        node_allocatable={"cpu": "2", "memory": "8Gi"},
    )
    return env


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$(A)", "a"),
        ("___$(B)___", "___b___"),
        ("$(A)$(B)", "ab"),
        ("$$(A)", "$(A)"),
        ("$$$(A)", "$a"),
        ("$$$$$$(A)", "$$$(A)"),
        ("$(MISSING)", "$(MISSING)"),
        ("$(", "$("),
        ("$(A", "$(A"),
        ("$A", "$A"),
        ("x$", "x$"),
        ("$", "$"),
        ("$()", "$()"),
        ("plain", "plain"),
    ],
)
def test_expand_follows_kubernetes_rules(text: str, expected: str) -> None:
    assert expand(text, {"A": "a", "B": "b"}.get) == expected


def test_values_expand_over_earlier_variables_only() -> None:
    env = resolve(
        {
            "env": [
                {"name": "FIRST", "value": "1"},
                {"name": "BOTH", "value": "$(FIRST)-$(LATER)-$(SVC)"},
                {"name": "LATER", "value": "2"},
            ]
        }
    )
    assert env["BOTH"] == "1-$(LATER)-x"


def test_value_from_sources() -> None:
    env = resolve(
        {
            "env": [
                {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
                {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "mode"}}},
                {"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
                {
                    "name": "MEM",
                    "valueFrom": {
                        "resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}
                    },
                },
                {
                    "name": "CPU",
                    "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu", "divisor": "0"}},
                },
            ]
        }
    )
    assert env["PW"] == "s3cret"
    assert env["MODE"] == "fast"
    assert env["NODE"] == "localnode"
    assert env["IP"] == "10.244.0.7"
    assert env["APP"] == "web"
    assert env["MEM"] == "256"
    assert env["CPU"] == "1"


def test_env_from_with_prefix_is_overridden_by_env() -> None:
    env = resolve(
        {
            "envFrom": [{"prefix": "CFG_", "configMapRef": {"name": "cfg"}}],
            "env": [{"name": "CFG_mode", "value": "slow"}],
        }
    )
    assert env["CFG_mode"] == "slow"
    assert env["CFG_level"] == "3"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"secretKeyRef": {"name": "db", "key": "user"}},
            "couldn't find key user in Secret team/db",
        ),
        ({"secretKeyRef": {"name": "nope", "key": "k"}}, 'secret "nope" not found'),
        (
            {"configMapKeyRef": {"name": "cfg", "key": "x"}},
            "couldn't find key x in ConfigMap team/cfg",
        ),
        ({"configMapKeyRef": {"name": "other", "key": "x"}}, 'configmap "other" not found'),
    ],
)
def test_missing_references_name_the_object_not_values(entry: JSON, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        resolve({"env": [{"name": "X", "valueFrom": entry}]})
    assert str(err.value) == message
    assert "s3cret" not in str(err.value)


def test_optional_references_are_skipped() -> None:
    env = resolve(
        {
            "envFrom": [{"secretRef": {"name": "absent", "optional": True}}],
            "env": [
                {
                    "name": "A",
                    "valueFrom": {"secretKeyRef": {"name": "db", "key": "no", "optional": True}},
                },
                {
                    "name": "B",
                    "valueFrom": {
                        "configMapKeyRef": {"name": "absent", "key": "k", "optional": True}
                    },
                },
            ],
        }
    )
    assert "A" not in env
    assert "B" not in env


def test_missing_env_from_source_fails() -> None:
    with pytest.raises(ConfigError, match='configmap "absent" not found'):
        resolve({"envFrom": [{"configMapRef": {"name": "absent"}}]})


def test_field_values() -> None:
    assert field_value(POD, "metadata.labels") == 'app="web"\ntier="front"'
    assert field_value(POD, "metadata.annotations['note']") == "hi"
    assert field_value(POD, "spec.serviceAccountName") == "runner"
    assert field_value(POD, "metadata.uid") == "u-1"
    with pytest.raises(ConfigError):
        field_value(POD, "spec.nope")


def test_resource_limits_default_to_node_allocatable() -> None:
    pod = {"spec": {"containers": [{"name": "c"}]}}
    assert resource_value(pod, "c", "limits.cpu", None, {"cpu": "2"}) == "2"
    assert resource_value(pod, "c", "limits.memory", "1Gi", {"memory": "8Gi"}) == "8"
    assert resource_value(pod, "c", "requests.cpu", None, {"cpu": "2"}) == "0"


def test_runtime_defaults_and_pod_override() -> None:
    env = runtime_env({"HOME": "/data"}, pod_name="p", venv_bin="/v/bin", home="/root")
    assert env["PATH"] == "/v/bin:/usr/local/bin:/usr/bin:/bin"
    assert env["HOSTNAME"] == "p"
    assert env["HOME"] == "/data"
    assert runtime_env({"PATH": "/x"}, pod_name="p", venv_bin="/v", home="/")["PATH"] == "/x"


def test_service_env() -> None:
    env = service_env("10.244.0.1", 6443)
    assert env["KUBERNETES_SERVICE_HOST"] == "10.244.0.1"
    assert env["KUBERNETES_SERVICE_PORT"] == "6443"
    assert env["KUBERNETES_SERVICE_PORT_HTTPS"] == "6443"
