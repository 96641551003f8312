"""The serving Deployment, Service and autoscaler of a ModelDeployment."""

from __future__ import annotations

from mlcycle.builders.common import (
    CONTAINER_NAME,
    Manifest,
    container_security_context,
    owner_reference,
    pod_security_context,
    resources,
    storage_environment,
)
from mlcycle.objects import ModelDeployment, ObjectMeta
from mlcycle.registry import ModelVersion
from mlcycle.settings import Settings
from mlcycle_contract import constants, drift, environment
from mlcycle_contract.api.modeldeployment import Monitoring

SERVICE_PORT = 80


def selector_labels(owner_name: str) -> dict[str, str]:
    return {
        constants.LABEL_MODEL_DEPLOYMENT: owner_name,
        constants.LABEL_COMPONENT: constants.COMPONENT_SERVE,
    }


def _metadata(owner: ModelDeployment, extra_labels: dict[str, str] | None = None) -> Manifest:
    name = owner.metadata.name
    return {
        "name": name,
        "namespace": owner.metadata.namespace,
        "labels": {constants.LABEL_MANAGED_BY: constants.MANAGED_BY, **selector_labels(name),
                   **(extra_labels or {})},
        "ownerReferences": [owner_reference(owner)],
    }


def build_deployment(owner: ModelDeployment, model: ModelVersion, settings: Settings) -> Manifest:
    """The model URI names a concrete version, so an alias move changes the pod template
    and the Deployment controller rolls it out; maxUnavailable 0 keeps capacity."""
    name, spec = owner.metadata.name, owner.spec
    model_labels = {constants.LABEL_MODEL_NAME: model.name,
                    constants.LABEL_MODEL_VERSION: str(model.version)}
    probe = {"httpGet": {"path": environment.READINESS_PATH, "port": environment.SERVING_PORT_NAME},
             "periodSeconds": 2, "failureThreshold": 2}
    env = [
        {"name": environment.MODEL_URI.name, "value": model.uri},
        {"name": environment.MODEL_NAME.name, "value": model.name},
        {"name": environment.PORT.name, "value": str(environment.SERVING_PORT)},
        {"name": environment.MAX_BATCH_SIZE.name, "value": str(spec.serving.max_batch_size)},
        {"name": environment.MAX_BATCH_WAIT_MS.name,
         "value": str(spec.serving.max_batch_wait_ms)},
        {"name": environment.MODEL_DOWNLOAD_DIR.name, "value": "/tmp/model"},
        {"name": environment.WORKERS.name, "value": str(spec.serving.workers)},
        {"name": environment.MLFLOW_ALLOW_PICKLE_DESERIALIZATION.name,
         "value": environment.MLFLOW_ALLOW_PICKLE_DESERIALIZATION.default},
        *storage_environment(settings),
        *(_drift_environment(spec.monitoring) if spec.monitoring.drift else []),
    ]
    deployment_spec: Manifest = {
        "selector": {"matchLabels": selector_labels(name)},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": {
            "maxSurge": spec.rollout.max_surge, "maxUnavailable": spec.rollout.max_unavailable}},
        "template": {
            "metadata": {
                "labels": {**selector_labels(name), **model_labels},
                "annotations": {"prometheus.io/scrape": "true",
                                "prometheus.io/port": str(environment.SERVING_PORT),
                                "prometheus.io/path": environment.METRICS_PATH},
            },
            "spec": {
                "automountServiceAccountToken": False,
                "securityContext": pod_security_context(),
                "terminationGracePeriodSeconds": 30,
                # Replicas on different nodes, so one node lost leaves the model served;
                # a preference (ScheduleAnyway), so one node still runs them all, and per
                # revision (pod-template-hash), so a rollout spreads the new Pods too.
                "topologySpreadConstraints": [{
                    "maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": {"matchLabels": selector_labels(name)},
                    "matchLabelKeys": ["pod-template-hash"]}],
                "containers": [{
                    "name": CONTAINER_NAME,
                    "image": spec.image or settings.serving_image,
                    "imagePullPolicy": settings.image_pull_policy,
                    "env": env,
                    "ports": [{"name": environment.SERVING_PORT_NAME,
                               "containerPort": environment.SERVING_PORT}],
                    "readinessProbe": probe,
                    "livenessProbe": {
                        "httpGet": {"path": environment.LIVENESS_PATH,
                                    "port": environment.SERVING_PORT_NAME},
                        "periodSeconds": 10, "failureThreshold": 3},
                    "startupProbe": {**probe, "failureThreshold": 150},
                    "resources": resources(spec.resources),
                    "securityContext": container_security_context(),
                    "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                }],
                "volumes": [{"name": "tmp", "emptyDir": {}}],
            },
        },
    }
    if not spec.autoscaling.enabled:  # with an autoscaler, the HPA owns the replica count
        deployment_spec["replicas"] = spec.replicas
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": _metadata(owner, model_labels), "spec": deployment_spec}


def _drift_environment(monitoring: Monitoring) -> list[Manifest]:
    """The server's drift settings, set only with monitoring on: a Deployment without it
    does not roll when the operator is upgraded."""
    return [{"name": variable.name, "value": value} for variable, value in (
        (drift.DRIFT, "true"),
        (drift.DRIFT_WINDOW_ROWS, str(monitoring.window_rows)),
        (drift.DRIFT_WINDOW_SECONDS, str(monitoring.window_seconds)),
        (drift.DRIFT_PSI, str(monitoring.psi_threshold)),
        (drift.DRIFT_JENSEN_SHANNON, str(monitoring.jensen_shannon_threshold)),
        (drift.DRIFT_MISSING_SHIFT, str(monitoring.missing_shift_threshold)),
        (drift.DRIFT_UNSEEN_SHARE, str(monitoring.unseen_share_threshold)),
        (drift.DRIFT_MIN_ROWS, str(monitoring.min_rows)),
    )]


def build_service(owner: ModelDeployment) -> Manifest:
    name = owner.metadata.name
    return {
        "apiVersion": "v1", "kind": "Service", "metadata": _metadata(owner),
        "spec": {
            "selector": selector_labels(name),
            "ports": [{"name": environment.SERVING_PORT_NAME, "port": SERVICE_PORT,
                       "targetPort": environment.SERVING_PORT_NAME}],
        },
    }


def build_autoscaler(owner: ModelDeployment) -> Manifest:
    name = owner.metadata.name
    scaling = owner.spec.autoscaling
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(owner),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": scaling.min_replicas,
            "maxReplicas": scaling.max_replicas,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                "type": "Utilization", "averageUtilization": scaling.target_cpu_utilization}}}],
        },
    }


def service_url(metadata: ObjectMeta) -> str:
    return f"http://{metadata.name}.{metadata.namespace}.svc.cluster.local:{SERVICE_PORT}"
