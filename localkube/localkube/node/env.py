"""Container environment, resolved the way the kubelet does.

Order: service variables, then `envFrom` sources in order, then `env` entries in
order, each `value` expanded with `$(VAR)` over what is defined so far. Missing
Secrets/ConfigMaps/keys raise `ConfigError` with a message that names the object and
key, never a value. Pure: API objects come through the `Lookups` protocol.
"""

from __future__ import annotations

import base64
import json
import math
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any, Protocol

from kubernetes.utils.quantity import parse_quantity

JSON = dict[str, Any]


class ConfigError(Exception):
    """The container cannot be configured (kubelet reason `CreateContainerConfigError`)."""


class Lookups(Protocol):
    """Reads Secrets and ConfigMaps; returns None when the object does not exist."""

    def get_secret(self, namespace: str, name: str) -> JSON | None: ...

    def get_config_map(self, namespace: str, name: str) -> JSON | None: ...


def expand(text: str, lookup: Callable[[str], str | None]) -> str:
    """Kubernetes `$(VAR)` expansion: `$$` escapes, unknown references stay as they are."""
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    n = len(text)
    while cursor < n:
        if text[cursor] == "$" and cursor + 1 < n:
            out.append(text[checkpoint:cursor])
            nxt = text[cursor + 1]
            advance = 1
            if nxt == "$":
                out.append("$")
            elif nxt == "(":
                close = text.find(")", cursor + 2)
                if close == -1:
                    out.append("$(")
                else:
                    name = text[cursor + 2 : close]
                    value = lookup(name)
                    out.append(f"$({name})" if value is None else value)
                    advance = close - cursor
            else:
                out.append("$" + nxt)
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    return "".join(out) + text[checkpoint:]


def decode_secret_data(secret: JSON) -> dict[str, bytes]:
    return {k: base64.b64decode(v or "") for k, v in (secret.get("data") or {}).items()}


def secret_strings(secret: JSON) -> dict[str, str]:
    return {k: v.decode("utf-8", "surrogateescape") for k, v in decode_secret_data(secret).items()}


def config_map_strings(config_map: JSON) -> dict[str, str]:
    return {k: str(v) for k, v in (config_map.get("data") or {}).items()}


_SUBSCRIPT = re.compile(r"^(metadata\.(?:labels|annotations))\['(.*)'\]$")


def format_map(values: Mapping[str, str]) -> str:
    """Labels/annotations as the downward API renders them: sorted `k="v"` lines."""
    return "\n".join(f"{k}={json.dumps(values[k])}" for k in sorted(values))


def field_value(pod: JSON, path: str) -> str:
    """Value of a downward-API `fieldRef.fieldPath` on the pod."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    match = _SUBSCRIPT.match(path)
    if match:
        source = meta.get(match.group(1).split(".")[1]) or {}
        return str(source.get(match.group(2), ""))
    simple: dict[str, Callable[[], Any]] = {
        "metadata.name": lambda: meta.get("name"),
        "metadata.namespace": lambda: meta.get("namespace"),
        "metadata.uid": lambda: meta.get("uid"),
        "metadata.labels": lambda: format_map(meta.get("labels") or {}),
        "metadata.annotations": lambda: format_map(meta.get("annotations") or {}),
        "spec.nodeName": lambda: spec.get("nodeName"),
        "spec.serviceAccountName": lambda: spec.get("serviceAccountName"),
        "status.podIP": lambda: status.get("podIP"),
        "status.hostIP": lambda: status.get("hostIP"),
        "status.podIPs": lambda: ",".join(i["ip"] for i in status.get("podIPs") or []),
        "status.hostIPs": lambda: ",".join(i["ip"] for i in status.get("hostIPs") or []),
    }
    if path not in simple:
        raise ConfigError(f"unsupported fieldRef fieldPath {path!r}")
    value = simple[path]()
    return "" if value is None else str(value)


def resource_value(
    pod: JSON,
    container_name: str,
    resource: str,
    divisor: str | None,
    node_allocatable: Mapping[str, str],
) -> str:
    """Value of a `resourceFieldRef` (limits default to the node's allocatable)."""
    containers = list((pod.get("spec") or {}).get("containers") or [])
    containers += list((pod.get("spec") or {}).get("initContainers") or [])
    container = next((c for c in containers if c.get("name") == container_name), None)
    if container is None:
        raise ConfigError(f"resourceFieldRef: container {container_name!r} not found")
    kind, _, name = resource.partition(".")
    if kind not in ("limits", "requests") or name not in ("cpu", "memory", "ephemeral-storage"):
        raise ConfigError(f"unsupported resourceFieldRef resource {resource!r}")
    resources = (container.get("resources") or {}).get(kind) or {}
    raw = resources.get(name)
    if raw is None:
        raw = node_allocatable.get(name, "0") if kind == "limits" else "0"
    quantity: Decimal = parse_quantity(raw)
    div: Decimal = parse_quantity(divisor or "1")
    if div == 0:  # the apiserver defaults an unset divisor to "0", meaning 1
        div = Decimal(1)
    if div < 0:
        raise ConfigError(f"invalid divisor {divisor!r} in resourceFieldRef")
    if name == "cpu":
        return str(math.ceil(math.ceil(quantity * 1000) / math.ceil(div * 1000)))
    return str(math.ceil(quantity / div))


def service_env(api_host: str, api_port: int) -> dict[str, str]:
    """The `kubernetes` Service variables every container gets."""
    port = str(api_port)
    tcp = f"tcp://{api_host}:{port}"
    return {
        "KUBERNETES_SERVICE_HOST": api_host,
        "KUBERNETES_SERVICE_PORT": port,
        "KUBERNETES_SERVICE_PORT_HTTPS": port,
        "KUBERNETES_PORT": tcp,
        f"KUBERNETES_PORT_{port}_TCP": tcp,
        f"KUBERNETES_PORT_{port}_TCP_PROTO": "tcp",
        f"KUBERNETES_PORT_{port}_TCP_PORT": port,
        f"KUBERNETES_PORT_{port}_TCP_ADDR": api_host,
    }


def _valid_name(name: str) -> bool:
    return bool(name) and "=" not in name and "\0" not in name


def _env_from(namespace: str, source: JSON, lookups: Lookups, env: dict[str, str]) -> None:
    prefix = source.get("prefix") or ""
    if "configMapRef" in source:
        ref = source["configMapRef"] or {}
        obj = lookups.get_config_map(namespace, ref.get("name", ""))
        if obj is None:
            if ref.get("optional"):
                return
            raise ConfigError(f'configmap "{ref.get("name", "")}" not found')
        values = config_map_strings(obj)
    elif "secretRef" in source:
        ref = source["secretRef"] or {}
        obj = lookups.get_secret(namespace, ref.get("name", ""))
        if obj is None:
            if ref.get("optional"):
                return
            raise ConfigError(f'secret "{ref.get("name", "")}" not found')
        values = secret_strings(obj)
    else:
        return
    for key, value in values.items():
        if _valid_name(prefix + key):
            env[prefix + key] = value



def _key_value(ref: Mapping[str, Any], values: Mapping[str, str] | None, noun: str, kind: str,
               namespace: str) -> str | None:
    """One key of a Secret or ConfigMap (None when optional and missing), with the
    kubelet's messages: they name the object and key, never a value."""
    name, key = ref.get("name", ""), ref.get("key", "")
    if values is None:
        if ref.get("optional"):
            return None
        raise ConfigError(f'{noun} "{name}" not found')
    if key not in values:
        if ref.get("optional"):
            return None
        raise ConfigError(f"couldn't find key {key} in {kind} {namespace}/{name}")
    return values[key]


def _value_from(
    pod: JSON,
    container: JSON,
    source: JSON,
    lookups: Lookups,
    node_allocatable: Mapping[str, str],
) -> str | None:
    """One `valueFrom`; None means "optional and missing: leave the variable out"."""
    namespace = (pod.get("metadata") or {}).get("namespace", "default")
    if "secretKeyRef" in source:
        ref = source["secretKeyRef"] or {}
        found = lookups.get_secret(namespace, ref.get("name", ""))
        return _key_value(ref, found and secret_strings(found), "secret", "Secret", namespace)
    if "configMapKeyRef" in source:
        ref = source["configMapKeyRef"] or {}
        found = lookups.get_config_map(namespace, ref.get("name", ""))
        return _key_value(ref, found and config_map_strings(found), "configmap", "ConfigMap",
                          namespace)
    if "fieldRef" in source:
        return field_value(pod, (source["fieldRef"] or {}).get("fieldPath", ""))
    if "resourceFieldRef" in source:
        ref = source["resourceFieldRef"] or {}
        return resource_value(
            pod,
            ref.get("containerName") or container.get("name", ""),
            ref.get("resource", ""),
            None if ref.get("divisor") is None else str(ref["divisor"]),
            node_allocatable,
        )
    raise ConfigError(f"unsupported valueFrom source {sorted(source)}")


def resolve_env(
    pod: JSON,
    container: JSON,
    lookups: Lookups,
    *,
    services: Mapping[str, str],
    node_allocatable: Mapping[str, str],
) -> dict[str, str]:
    """The variables Kubernetes defines for `container` (no runtime defaults)."""
    namespace = (pod.get("metadata") or {}).get("namespace", "default")
    env: dict[str, str] = dict(services)
    for source in container.get("envFrom") or []:
        _env_from(namespace, source, lookups, env)
    for item in container.get("env") or []:
        name = item.get("name", "")
        if item.get("valueFrom"):
            value = _value_from(pod, container, item["valueFrom"], lookups, node_allocatable)
            if value is None:
                continue
        else:
            value = expand(str(item.get("value") or ""), env.get)
        if _valid_name(name):
            env[name] = value
    return env


def runtime_env(
    kube_env: Mapping[str, str], *, pod_name: str, venv_bin: str, home: str
) -> dict[str, str]:
    """Add what the "image" and runtime would provide, unless the pod set it."""
    out = {
        "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin",
        "HOSTNAME": pod_name,
        "HOME": home,
    }
    out.update(kube_env)
    return out


def expand_args(args: list[str], env: Mapping[str, str]) -> list[str]:
    """`$(VAR)` in command and args, over the container's Kubernetes variables."""
    return [expand(a, env.get) for a in args]
