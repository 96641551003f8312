"""The chart renders, lints and says what a Pod Security `restricted` namespace demands, for
the default values and every scenario under charts/mlcycle/ci/."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from mlcycle.settings import Settings
from tests.unit.chart_rendering import (
    CHART,
    NAMESPACE,
    SCENARIOS,
    Manifest,
    of_kind,
    pod_templates,
    render,
    run_helm,
    scenario_args,
)

ALL = [None, *SCENARIOS]


def ids(scenario: Path | None) -> str:
    return scenario.stem if scenario else "default"


@pytest.mark.parametrize("scenario", ALL, ids=ids)
def test_helm_lint_passes(scenario: Path | None) -> None:
    completed = run_helm("lint", str(CHART), "--strict", *scenario_args(scenario))
    assert completed.returncode == 0, completed.stdout + completed.stderr


@pytest.mark.parametrize("scenario", ALL, ids=ids)
def test_every_pod_passes_the_restricted_standard_with_resources(scenario: Path | None) -> None:
    pods = list(pod_templates(render(*scenario_args(scenario))))
    assert pods
    for name, spec in pods:
        security = spec["securityContext"]
        assert security["runAsNonRoot"] is True, name
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert not spec.get("hostNetwork") and not spec.get("hostPID"), name
        writable = {v["name"] for v in spec.get("volumes", [])
                    if "emptyDir" in v or "persistentVolumeClaim" in v}
        assert all(set(v) & {"emptyDir", "persistentVolumeClaim", "configMap", "secret",
                             "projected"} for v in spec.get("volumes", [])), name
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert not container.get("ports") or all("hostPort" not in p
                                                     for p in container["ports"])
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][kind]), (name, kind)
            mounts = {m["mountPath"]: m for m in container.get("volumeMounts", [])}
            assert "/tmp" in mounts and mounts["/tmp"]["name"] in writable, name
            for mount in mounts.values():
                assert mount["name"] in writable or mount.get("readOnly"), (name, mount)


def test_default_release_has_the_operator_mlflow_minio_and_their_volumes() -> None:
    documents = render()
    names = {(d["kind"], d["metadata"]["name"]) for d in documents}
    assert {
        ("Deployment", "rel-mlcycle-operator"), ("Deployment", "rel-mlcycle-mlflow"),
        ("Deployment", "rel-mlcycle-minio"), ("Service", "rel-mlcycle-mlflow"),
        ("Service", "rel-mlcycle-minio"), ("PersistentVolumeClaim", "rel-mlcycle-mlflow"),
        ("PersistentVolumeClaim", "rel-mlcycle-minio"), ("Job", "rel-mlcycle-minio-buckets"),
        ("ServiceAccount", "rel-mlcycle-operator"), ("Secret", "rel-mlcycle-s3"),
        ("PodDisruptionBudget", "rel-mlcycle-operator"),
    } <= names
    for claim in of_kind(documents, "PersistentVolumeClaim"):
        assert claim["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    mlflow = next(d for d in documents if d["metadata"]["name"] == "rel-mlcycle-mlflow"
                  and d["kind"] == "Deployment")
    args = mlflow["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--backend-store-uri=sqlite:////mlflow/data/mlflow.db" in args
    assert "--artifacts-destination=s3://mlflow" in args
    hosts = next(a for a in args if a.startswith("--allowed-hosts="))
    assert "rel-mlcycle-mlflow.mlops.svc:5000" in hosts.split("=", 1)[1].split(",")


def test_services_select_their_pods_on_named_ports() -> None:
    documents = render()
    pods = {d["metadata"]["name"]: d["spec"]["template"] for d in of_kind(documents, "Deployment")}
    for service in of_kind(documents, "Service"):
        template = pods[service["metadata"]["name"]]
        labels = template["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()
        port_names = {p["name"] for c in template["spec"]["containers"] for p in c["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names


def operator_env(documents: list[Manifest]) -> dict[str, Any]:
    deployment = next(d for d in of_kind(documents, "Deployment")
                      if d["metadata"]["name"].endswith("-operator"))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_the_operator_is_configured_for_the_embedded_services_by_default() -> None:
    env = operator_env(render())
    assert env["MLCYCLE_NAMESPACES"] == NAMESPACE
    assert env["MLCYCLE_MLFLOW_TRACKING_URI"] == "http://rel-mlcycle-mlflow.mlops.svc:5000"
    assert env["MLCYCLE_S3_ENDPOINT"] == "http://rel-mlcycle-minio.mlops.svc:9000"
    assert env["MINIO_ROOT_PASSWORD"] == {"secretKeyRef": {"name": "rel-mlcycle-s3",
                                                            "key": "secretKey"}}
    assert env["MLFLOW_TRACKING_PASSWORD"] == {"secretKeyRef": {
        "name": "rel-mlcycle-mlflow-admin", "key": "password"}}
    assert env["MLCYCLE_TRAINER_IMAGE"] == "ghcr.io/mlcycle/trainer:0.1.0"
    assert env["MLCYCLE_SERVING_IMAGE"] == "ghcr.io/mlcycle/serving:0.1.0"
    assert env["MLCYCLE_PEERING"] == "rel-mlcycle" and env["MLCYCLE_SCAN_CLUSTER"] == "false"
    assert env["POD_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}


def test_explicit_urls_replace_the_service_names() -> None:
    env = operator_env(render("--set", "mlflow.trackingURI=http://10.0.0.1:5000",
                              "--set", "s3.endpoint=http://10.0.0.2:9000"))
    assert env["MLCYCLE_MLFLOW_TRACKING_URI"] == "http://10.0.0.1:5000"
    assert env["MLCYCLE_S3_ENDPOINT"] == "http://10.0.0.2:9000"


def test_the_url_source_policy_reaches_the_operator_as_its_settings_read_it() -> None:
    env = operator_env(render("--set", "workloads.sourceDenyCIDRs={10.0.0.0/16,fd00::/8}",
                              "--set", "workloads.sourceAllowCIDRs={10.0.5.0/24}"))
    settings = Settings.from_env(env)
    assert settings.source_deny_cidrs == ["10.0.0.0/16", "fd00::/8"]
    assert settings.source_allow_cidrs == ["10.0.5.0/24"]
    assert Settings.from_env(operator_env(render())).source_deny_cidrs == ["10.96.0.0/12"]


def test_extra_volumes_are_mounted_into_the_operator_beside_its_tmp() -> None:
    documents = render("--set-json", 'operator.extraVolumes=[{"name": "ca", "configMap": '
                       '{"name": "corporate-ca"}}]',
                       "--set-json", 'operator.extraVolumeMounts=[{"name": "ca", '
                       '"mountPath": "/etc/ca", "readOnly": true}]')
    pod = dict(pod_templates(documents))["rel-mlcycle-operator"]
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {}},
                              {"name": "ca", "configMap": {"name": "corporate-ca"}}]
    assert pod["containers"][0]["volumeMounts"] == [
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "ca", "mountPath": "/etc/ca", "readOnly": True}]


def test_one_replica_still_peers_so_scaling_up_never_runs_two_active_operators() -> None:
    documents = render("--set", "operator.replicas=1")
    assert operator_env(documents)["MLCYCLE_PEERING"] == "rel-mlcycle"
    assert not of_kind(documents, "PodDisruptionBudget")


def test_zero_replicas_pause_the_operator_and_keep_mlflow_and_minio() -> None:
    documents = render("--set", "operator.replicas=0")
    deployments = {d["metadata"]["name"]: d["spec"]["replicas"]
                   for d in of_kind(documents, "Deployment")}
    assert deployments["rel-mlcycle-operator"] == 0
    assert deployments["rel-mlcycle-mlflow"] == deployments["rel-mlcycle-minio"] == 1
    assert not of_kind(documents, "PodDisruptionBudget")


def test_external_services_scenario_has_no_mlflow_minio_or_generated_secret() -> None:
    documents = render("--values", str(CHART / "ci/external-services-values.yaml"))
    names = {d["metadata"]["name"] for d in documents}
    assert not {n for n in names if "mlflow" in n or "minio" in n}
    assert not of_kind(documents, "Secret")
    env = operator_env(documents)
    assert env["MINIO_ROOT_USER"]["secretKeyRef"]["name"] == "mlcycle-s3"
    assert env["MLFLOW_TRACKING_USERNAME"]["secretKeyRef"]["name"] == "mlflow-admin"
    assert env["MLCYCLE_MLFLOW_TRACKING_URI"] == "http://mlflow.mlops.svc:5000"


def test_postgresql_scenario_reads_the_password_from_its_secret() -> None:
    documents = render("--values", str(CHART / "ci/postgresql-values.yaml"))
    mlflow = next(d for d in of_kind(documents, "Deployment")
                  if d["metadata"]["name"].endswith("-mlflow"))
    container = mlflow["spec"]["template"]["spec"]["containers"][0]
    assert ("--backend-store-uri=postgresql://mlflow@"
            "postgresql.databases.svc:5432/mlflow?sslmode=disable") in container["args"]
    password = next(e for e in container["env"] if e["name"] == "PGPASSWORD")
    assert password["valueFrom"]["secretKeyRef"] == {"name": "mlflow-postgresql",
                                                     "key": "password"}
    assert not [c for c in of_kind(documents, "PersistentVolumeClaim")
                if c["metadata"]["name"].endswith("-mlflow")]


def kubelet_argv(container: Manifest, secret_value: str) -> list[str]:
    """The container's argv as the kubelet runs it: $(VAR) expanded from its env, with every
    secretKeyRef holding `secret_value`."""
    values = {e["name"]: e.get("value", secret_value if "secretKeyRef" in e.get(
        "valueFrom", {}) else "") for e in container.get("env", [])}
    return [re.sub(r"\$\((\w+)\)", lambda m: values.get(m[1], m[0]), arg)
            for arg in [*container.get("command", []), *container.get("args", [])]]


def test_postgresql_password_is_in_no_command_line() -> None:
    password = "pg-password-f00d"
    documents = render("--values", str(CHART / "ci/postgresql-values.yaml"))
    containers = [c for _, pod in pod_templates(documents) for c in pod["containers"]]
    assert containers
    for container in containers:
        assert not [arg for arg in kubelet_argv(container, password) if password in arg]


def test_served_namespaces_get_no_admin_secret_and_nothing_is_kept_when_ephemeral() -> None:
    """The operator writes each served namespace's own credentials; the chart's admin
    Secrets stay in the release namespace."""
    documents = render("--values", str(CHART / "ci/namespaces-values.yaml"))
    secrets = of_kind(documents, "Secret")
    assert sorted((s["metadata"]["namespace"], s["metadata"]["name"]) for s in secrets) == [
        (NAMESPACE, "rel-mlcycle-mlflow-admin"), (NAMESPACE, "rel-mlcycle-s3")]
    ephemeral = render("--values", str(CHART / "ci/ephemeral-values.yaml"))
    assert not of_kind(ephemeral, "PersistentVolumeClaim")
    assert not [d for d in ephemeral
                if (d["metadata"].get("annotations") or {}).get("helm.sh/resource-policy")]


def test_required_values_fail_with_a_message_naming_them() -> None:
    for args, words in [
        (["--set", "mlflow.enabled=false"], "trackingURI"),
        (["--set", "minio.enabled=false"], "endpoint"),
        (["--set", "serviceAccount.create=false"], "serviceAccount.name"),
        (["--set", "operator.replica=3"], "replica"),
    ]:
        completed = run_helm("template", "rel", str(CHART), *args)
        assert completed.returncode != 0 and words in completed.stderr, (args, completed.stderr)


def test_notes_tell_the_user_what_to_apply_next(tmp_path: Path) -> None:
    """NOTES.txt rendered as a plain template of a copy of the chart (`helm template` leaves
    NOTES out, `helm install --dry-run` needs a cluster)."""
    chart = tmp_path / "mlcycle"
    shutil.copytree(CHART, chart)
    shutil.copy(chart / "templates/NOTES.txt", chart / "notes.txt")
    (chart / "templates/notes.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: notes}\n"
        'data:\n  notes: {{ tpl (.Files.Get "notes.txt") . | quote }}\n')
    completed = run_helm("template", "rel", str(chart), "--namespace", NAMESPACE,
                         "--show-only", "templates/notes.yaml")
    assert completed.returncode == 0, completed.stderr
    notes = yaml.safe_load(completed.stdout)["data"]["notes"]
    assert "kubectl -n mlops apply -f examples/iris/" in notes
    assert "rollout status deployment/rel-mlcycle-operator" in notes
    assert "port-forward svc/rel-mlcycle-mlflow 5000" in notes


# --- values.yaml and values.schema.json ------------------------------------------------------

VALUES_TEXT = (CHART / "values.yaml").read_text()
SCHEMA = json.loads((CHART / "values.schema.json").read_text())


def schema_objects(node: dict[str, Any], path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = []
    if "properties" in node:
        found.append((path, node))
        for name, child in node["properties"].items():
            found.extend(schema_objects(child, f"{path}.{name}".lstrip(".")))
    return found


def value_paths(text: str) -> dict[str, int]:
    """Dotted path of each key line of values.yaml -> its line index (block style only)."""
    paths: dict[str, int] = {}
    stack: list[tuple[int, str]] = []
    for index, line in enumerate(text.splitlines()):
        match = re.match(r"^( *)([A-Za-z][A-Za-z0-9]*):", line)
        if not match:
            continue
        indent = len(match.group(1))
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match.group(2)))
        paths[".".join(key for _, key in stack)] = index
    return paths


def test_every_value_is_in_the_schema_and_the_schema_forbids_unknown_keys() -> None:
    objects = dict(schema_objects(SCHEMA))
    for path, node in objects.items():
        assert node.get("additionalProperties") is False, path or "<root>"
    values = yaml.safe_load(VALUES_TEXT)

    def walk(value: Any, node: dict[str, Any], path: str) -> None:
        if "properties" not in node:
            return
        assert isinstance(value, dict), path
        for key, child in value.items():
            assert key in node["properties"], f"{path}.{key} is not in values.schema.json"
            walk(child, node["properties"][key], f"{path}.{key}")

    walk(values, SCHEMA, "")


def test_every_value_is_commented() -> None:
    """Each leaf value has a comment line right above it; sections (objects the schema
    spells out) may go without, and keys inside a documented Kubernetes object (a security
    context, requests and limits) are that object's."""
    lines = VALUES_TEXT.splitlines()
    sections = {path for path, _ in schema_objects(SCHEMA)} - {"operator.resources"}
    inside_objects = ("podSecurityContext.", "securityContext.")
    missing = [
        path for path, index in value_paths(VALUES_TEXT).items()
        if path not in sections and not path.startswith(inside_objects)
        and ".resources." not in path and not lines[index - 1].lstrip().startswith("#")
    ]
    assert not missing, f"values without a comment above them: {missing}"
