"""Least privilege: the chart grants exactly the verbs on exactly the resources the operator
uses, and each grant names the code that uses it. (That the grants suffice is proven by
tests/e2e/test_chart.py, which runs the whole flow with the chart's ServiceAccount only.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mlcycle.settings import Settings
from tests.unit.chart_rendering import CHART, of_kind, render

ROOT = CHART.parents[1]
OPERATOR = ROOT / "operator" / "mlcycle"
Grant = tuple[str, str, str]  # (API group, resource, verb)

KOPF_WATCHES = ("handlers.py", "@kopf.on.resume(GROUP, VERSION, constants.")
KOPF_ANNOTATIONS = ("handlers.py", "settings.persistence.progress_storage = kopf.Annotations")

# Every grant, with the file (under operator/mlcycle) and the code that needs it.
USES: dict[Grant, tuple[str, str]] = {
    **{("mlcycle.dev", kind, verb): evidence
       for kind in ("datasets", "trainingjobs", "modeldeployments")
       for verb, evidence in {
           "get": ("kube.py", "get_namespaced_custom_object("),
           "list": KOPF_WATCHES,  # kopf lists, then watches, every kind it handles
           "watch": KOPF_WATCHES,
           "patch": KOPF_ANNOTATIONS,  # kopf's progress and diff-base annotations
       }.items()},
    **{("mlcycle.dev", f"{kind}/status", "patch"): ("kube.py",
                                                    "patch_namespaced_custom_object_status(")
       for kind in ("datasets", "trainingjobs", "modeldeployments")},
    ("batch", "jobs", "create"): ("kube.py", 'post(f"/apis/batch/v1/namespaces/{namespace}/jobs"'),
    ("batch", "jobs", "get"): ("kube.py", "read_namespaced_job("),
    ("batch", "jobs", "list"): ("kube.py", "list_namespaced_job("),  # and kopf, to watch
    ("batch", "jobs", "delete"): ("kube.py", "delete_namespaced_job("),
    ("batch", "jobs", "watch"): ("handlers.py", '@kopf.on.event("batch", "v1", "jobs"'),
    ("", "pods", "list"): ("kube.py", "list_namespaced_pod("),  # and kopf, to watch
    ("", "pods", "watch"): ("handlers.py", '@kopf.on.event("", "v1", "pods"'),
    # Server-side apply creates what is missing: the apiserver checks `create` and `patch`.
    ("apps", "deployments", "create"): ("reconcile/modeldeployment.py",
                                        "kube.apply(build_deployment("),
    ("apps", "deployments", "patch"): ("reconcile/modeldeployment.py",
                                       "kube.apply(build_deployment("),
    ("apps", "deployments", "get"): ("reconcile/modeldeployment.py",
                                     'kube.read("apps/v1", "Deployment"'),
    ("apps", "deployments", "list"): ("handlers.py", '@kopf.on.event("apps", "v1", "deployments"'),
    ("apps", "deployments", "watch"): ("handlers.py",
                                       '@kopf.on.event("apps", "v1", "deployments"'),
    ("", "services", "create"): ("reconcile/modeldeployment.py", "kube.apply(build_service("),
    ("", "services", "patch"): ("reconcile/modeldeployment.py", "kube.apply(build_service("),
    ("autoscaling", "horizontalpodautoscalers", "create"): ("reconcile/modeldeployment.py",
                                                           "kube.apply(build_autoscaler("),
    ("autoscaling", "horizontalpodautoscalers", "patch"): ("reconcile/modeldeployment.py",
                                                          "kube.apply(build_autoscaler("),
    ("autoscaling", "horizontalpodautoscalers", "delete"): (
        "reconcile/modeldeployment.py", 'kube.delete_if_exists("autoscaling/v2"'),
    ("", "events", "create"): ("kube.py", 'post(f"/api/v1/namespaces/{metadata.namespace}/events"'),
    # The same Event posted again is counted on the one object (kube.post_event).
    ("", "events", "get"): ("kube.py", "read_namespaced_event("),
    ("", "events", "patch"): ("kube.py", "patch_namespaced_event("),
    # Each namespace's own credentials: the operator writes them, and reads back its Secret.
    ("", "secrets", "create"): ("kube.py", "create_namespaced_secret("),
    ("", "secrets", "get"): ("kube.py", "read_namespaced_secret("),
}
PEERING_USES: dict[str, dict[Grant, tuple[str, str]]] = {
    "namespaced": {
        ("kopf.dev", "kopfpeerings", "create"): ("__main__.py", "create_namespaced_custom_object("),
        ("kopf.dev", "kopfpeerings", "list"): ("__main__.py", "standalone=False"),
        ("kopf.dev", "kopfpeerings", "watch"): ("__main__.py", "standalone=False"),
        ("kopf.dev", "kopfpeerings", "patch"): ("__main__.py", "standalone=False"),
    },
    "cluster": {
        ("kopf.dev", "clusterkopfpeerings", "create"): ("__main__.py",
                                                       "create_cluster_custom_object("),
        ("kopf.dev", "clusterkopfpeerings", "list"): ("__main__.py", "standalone=False"),
        ("kopf.dev", "clusterkopfpeerings", "watch"): ("__main__.py", "standalone=False"),
        ("kopf.dev", "clusterkopfpeerings", "patch"): ("__main__.py", "standalone=False"),
    },
}


def granted(rules: list[dict[str, list[str]]]) -> set[Grant]:
    return {(group, resource, verb) for rule in rules for group in rule["apiGroups"]
            for resource in rule["resources"] for verb in rule["verbs"]}


@pytest.mark.parametrize("scope", ["namespaced", "cluster"])
def test_grants_are_exactly_what_the_operator_uses_without_wildcards(scope: str) -> None:
    if scope == "cluster":
        documents = render("--set", "operator.clusterWide=true")
        (role,) = of_kind(documents, "ClusterRole")
        assert not of_kind(documents, "Role")
    else:
        documents = render("--set-json", 'operator.watchNamespaces=["team-a","team-b"]')
        roles = of_kind(documents, "Role")
        assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
        assert not of_kind(documents, "ClusterRole")
        assert roles[0]["rules"] == roles[1]["rules"]
        role = roles[0]
    for rule in role["rules"]:
        assert "*" not in rule["apiGroups"] + rule["resources"] + rule["verbs"], rule
        assert not rule.get("nonResourceURLs"), rule
        if rule.get("resourceNames"):  # only the operator's own Secret is named, and only read
            assert rule == {"apiGroups": [""], "resources": ["secrets"],
                            "resourceNames": [Settings().tenant_secret_name], "verbs": ["get"]}
    expected = set(USES) | set(PEERING_USES[scope])
    grants = granted(role["rules"])
    assert not grants - expected, f"granted but never used: {sorted(grants - expected)}"
    assert not expected - grants, f"used but not granted: {sorted(expected - grants)}"


def test_each_grant_names_code_that_exists() -> None:
    for grant, (path, code) in {**USES, **PEERING_USES["namespaced"],
                                **PEERING_USES["cluster"]}.items():
        assert code in (OPERATOR / path).read_text(), (grant, path, code)


def test_every_api_call_of_the_operator_is_accounted_for() -> None:
    """The reverse direction: each Kubernetes client call in the operator is the evidence of
    some grant, so a new call cannot slip in without a grant being considered."""
    evidence = {code for _, code in [*USES.values(), *PEERING_USES["namespaced"].values(),
                                     *PEERING_USES["cluster"].values()]}
    calls = set()
    for path in OPERATOR.rglob("*.py"):
        calls |= {f"{m}(" for m in re.findall(
            r"\.((?:create|read|get|list|patch|replace|delete)_\w+)\(", path.read_text())}
    client_calls = {c for c in calls if "namespaced" in c or "cluster" in c}
    assert client_calls, "the operator's API calls were not found"
    assert client_calls <= evidence, sorted(client_calls - evidence)


def test_bindings_bind_the_operator_service_account_only() -> None:
    for args, kind in ([[], "RoleBinding"], [["--set", "operator.clusterWide=true"],
                                              "ClusterRoleBinding"]):
        (binding,) = of_kind(render(*args), kind)
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "rel-mlcycle-operator",
                                        "namespace": "mlops"}]
        assert binding["roleRef"]["name"] == "rel-mlcycle-operator"


def test_no_rbac_when_disabled() -> None:
    documents = render("--set", "rbac.create=false")
    assert not [d for d in documents if d["kind"].endswith(("Role", "RoleBinding"))]


def test_the_operator_reads_no_secret_but_the_one_it_writes() -> None:
    """kube.ensure_secret is the only Secret read; tenancy calls it with its own Secret."""
    readers = {path.name for path in Path(OPERATOR).rglob("*.py")
               if re.search(r"(read|list|get)_namespaced_secret", path.read_text())}
    assert readers == {"kube.py"}
    callers = {path.name for path in Path(OPERATOR).rglob("*.py")
               if "kube.ensure_secret(" in path.read_text()}
    assert callers == {"tenancy.py"}
    assert "tenant_secret(namespace, settings)" in (OPERATOR / "tenancy.py").read_text()
