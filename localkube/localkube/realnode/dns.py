"""CoreDNS as the cluster DNS: a Deployment on the real node and the `kube-dns` Service at
the address every kubelet's `clusterDNS` names, so `<svc>.<ns>.svc.cluster.local` resolves."""

from __future__ import annotations

from typing import Any

from localkube.realnode.config import CLUSTER_DNS, CLUSTER_DOMAIN

NAMESPACE = "kube-system"
NAME = "coredns"
PORT = 1053  # unprivileged inside the Pod; the Service maps 53 to it

COREFILE = f"""\
.:{PORT} {{
    errors
    health :8080
    ready :8181
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
        ttl 30
    }}
    forward . /etc/resolv.conf
    cache 30
}}
"""


def restricted_security_context(uid: int) -> dict[str, Any]:
    """The Pod Security Standard `restricted`, for one container."""
    return {
        "runAsNonRoot": True, "runAsUser": uid, "runAsGroup": uid,
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"},
    }


def build_manifests(image: str) -> list[dict[str, Any]]:
    """Everything CoreDNS needs, in apply order."""
    labels = {"k8s-app": "kube-dns"}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": NAME, "namespace": NAMESPACE}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": "localkube:coredns"},
         "rules": [
             {"apiGroups": [""], "resources": ["services", "pods", "namespaces"],
              "verbs": ["list", "watch"]},
             {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
              "verbs": ["list", "watch"]},
         ]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "localkube:coredns"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": "localkube:coredns"},
         "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}]},
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": NAME, "namespace": NAMESPACE}, "data": {"Corefile": COREFILE}},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": labels},
         "spec": {
             "replicas": 1,
             "selector": {"matchLabels": labels},
             "template": {
                 "metadata": {"labels": labels},
                 "spec": {
                     "serviceAccountName": NAME,
                     "dnsPolicy": "Default",  # the host's resolver, for names outside
                     "priorityClassName": "system-cluster-critical",
                     "containers": [{
                         "name": NAME, "image": image, "imagePullPolicy": "Never",
                         "args": ["-conf", "/etc/coredns/Corefile"],
                         "ports": [
                             {"name": "dns", "containerPort": PORT, "protocol": "UDP"},
                             {"name": "dns-tcp", "containerPort": PORT, "protocol": "TCP"},
                         ],
                         "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181},
                                            "periodSeconds": 2},
                         "livenessProbe": {"httpGet": {"path": "/health", "port": 8080},
                                           "periodSeconds": 10, "failureThreshold": 5},
                         "resources": {"requests": {"cpu": "50m", "memory": "32Mi"},
                                       "limits": {"memory": "170Mi"}},
                         "securityContext": restricted_security_context(65532),
                         "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns",
                                           "readOnly": True}],
                     }],
                     "volumes": [{"name": "config", "configMap": {"name": NAME}}],
                 },
             },
         }},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "kube-dns", "namespace": NAMESPACE, "labels": labels},
         "spec": {
             "selector": labels, "clusterIP": CLUSTER_DNS,
             "ports": [
                 {"name": "dns", "port": 53, "targetPort": PORT, "protocol": "UDP"},
                 {"name": "dns-tcp", "port": 53, "targetPort": PORT, "protocol": "TCP"},
             ],
         }},
    ]
