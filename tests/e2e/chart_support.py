"""What the chart's end-to-end tests need besides localkube.release: the shared cluster's CRDs
handed back to the harness after a test release owned them."""

from __future__ import annotations

from typing import Any

from kubernetes import client

HELM_KEYS = {
    "annotations": ("meta.helm.sh/release-name", "meta.helm.sh/release-namespace",
                    "helm.sh/resource-policy"),
    "labels": ("helm.sh/chart", "app.kubernetes.io/managed-by", "app.kubernetes.io/name",
               "app.kubernetes.io/instance", "app.kubernetes.io/version",
               "app.kubernetes.io/part-of"),
}


def hand_crds_back(k8s: client.ApiClient, names: list[str]) -> None:
    """Undo a test release's ownership of the shared cluster's CRDs (installed by the harness
    with `kubectl apply --server-side`): Helm's field manager and labels go, so the harness's
    next apply of a changed schema meets no conflict."""
    api = client.ApiextensionsV1Api(k8s)
    for name in names:
        crd = k8s.sanitize_for_serialization(api.read_custom_resource_definition(name))
        metadata = crd["metadata"]
        kept = [entry for entry in metadata.get("managedFields") or []
                if entry.get("manager") != "helm"]
        operations: list[dict[str, Any]] = [
            {"op": "replace", "path": "/metadata/managedFields", "value": kept or [{}]}]
        for section, keys in HELM_KEYS.items():
            for key in keys:
                if key in (metadata.get(section) or {}):
                    escaped = key.replace("~", "~0").replace("/", "~1")
                    operations.append({"op": "remove", "path": f"/metadata/{section}/{escaped}"})
        api.patch_custom_resource_definition(name, operations)
