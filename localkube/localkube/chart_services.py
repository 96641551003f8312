"""MinIO and MLflow for the local stack from the Helm chart, as a user installs them: release
`mlcycle` in namespace `mlcycle`, from the images built here, with the operator paused
(`operator.replicas=0`: the stack runs its own operator process, localkube.stack) and the
CRDs left to the harness (`crds.enabled=false`).

Every `up` starts from fresh data: the namespace goes, its claims with it. The admin
credentials are the chart's own Secrets, copied into the same 0600 files as the local
processes' (localkube.services). The host and every Pod reach MinIO and MLflow at their
Services' ClusterIPs, through kube-proxy.
"""

from __future__ import annotations

import base64
import os
import time

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from localkube import build, processes, readiness, release, services
from localkube.cluster import ClusterState
from localkube.images import CHART_IMAGES, WORKLOAD_IMAGES
from localkube.paths import LocalPaths
from localkube.realnode import node
from localkube.services import MlflowAdmin, S3Credentials, ServicesState
from localkube.testing import delete_namespace, wait_for

RELEASE = NAMESPACE = "mlcycle"
FULLNAME = RELEASE  # the chart's fullname when the release is named after it
SERVICE_PORTS = {"minio": "s3", "mlflow": "http"}  # each Service's named port


def deployment_name(service: str) -> str:
    return f"{FULLNAME}-{service}"


def _secret(k8s: client.ApiClient, name: str) -> dict[str, str]:
    secret = client.CoreV1Api(k8s).read_namespaced_secret(name, NAMESPACE)
    return {key: base64.b64decode(value).decode() for key, value in (secret.data or {}).items()}


def up(paths: LocalPaths, stack_cluster: ClusterState,
       progress: build.Progress = build.say) -> ServicesState:
    """Install (or reinstall over fresh data) the chart's MinIO and MLflow; record their
    addresses and write the admin credentials."""
    if os.environ.get(services.BACKEND_URI_VARIABLE):
        raise SystemExit(
            f"{services.BACKEND_URI_VARIABLE} is for the local MLflow process: run with "
            f"{services.MODE_VARIABLE}=process, or set the chart's mlflow.backendStore")
    started = time.monotonic()
    k8s = readiness.api_client(paths.kubeconfig)
    delete_namespace(paths.kubeconfig, NAMESPACE)
    client.CoreV1Api(k8s).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
    readiness.wait_for_default_service_account(paths.kubeconfig, NAMESPACE, timeout=60)
    # The chart names the workload images too (its bucket Job runs the trainer's boto3).
    built = node.load_images(paths, (*CHART_IMAGES, *WORKLOAD_IMAGES), stack_cluster.nodes,
                             progress)
    helm = release.Helm.create(paths.kubeconfig, paths.root / "helm")
    helm.run("upgrade", "--install", RELEASE, str(release.CHART), "--namespace", NAMESPACE,
             "--wait", "--timeout", "6m", "--set", "crds.enabled=false",
             "--set", "operator.replicas=0", *release.local_image_values(built))
    minio = release.service_url(k8s, NAMESPACE, deployment_name("minio"), SERVICE_PORTS["minio"])
    # MLflow hands its clients presigned URLs on its own S3 endpoint; the chart's default, the
    # Service's DNS name, does not resolve on this host, where the tests read artifacts. The
    # ClusterIP exists only once the Service does: hence a second, short upgrade.
    helm.run("upgrade", RELEASE, str(release.CHART), "--namespace", NAMESPACE, "--reuse-values",
             "--wait", "--timeout", "6m", "--set", f"s3.endpoint={minio}")
    state = ServicesState(
        s3_endpoint=minio,
        mlflow_url=release.service_url(k8s, NAMESPACE, deployment_name("mlflow"),
                                       SERVICE_PORTS["mlflow"]),
        pids={},
        release_namespace=NAMESPACE,
    )
    s3 = _secret(k8s, f"{FULLNAME}-s3")
    services.write_private(services.credentials_file(paths),
                           S3Credentials(access_key=s3["accessKey"], secret_key=s3["secretKey"]))
    admin = _secret(k8s, f"{FULLNAME}-mlflow-admin")
    services.write_private(services.mlflow_admin_file(paths),
                           MlflowAdmin(username=admin["username"], password=admin["password"]))
    services.save(paths, state)
    for name in SERVICE_PORTS:
        _wait_healthy(state, name)
    progress(f"MinIO ({state.s3_endpoint}) and MLflow ({state.mlflow_url}) run from the chart, "
             f"release {RELEASE} in namespace {NAMESPACE}, in {time.monotonic() - started:.0f} s")
    return state


def _wait_healthy(state: ServicesState, name: str) -> None:
    url = services.health_url(state, name)
    wait_for(f"{name} healthy at {url} (kubectl logs -n {NAMESPACE} "
             f"deployment/{deployment_name(name)})",
             lambda: processes.health_error(url) is None, timeout=120, interval=0.2)


def _ready_replicas(apps: client.AppsV1Api, service: str) -> int:
    deployment = apps.read_namespaced_deployment(deployment_name(service), NAMESPACE)
    return deployment.status.ready_replicas or 0


def is_running(paths: LocalPaths) -> bool:
    """Both Deployments have a ready Pod (false when the cluster or the release is gone)."""
    try:
        apps = client.AppsV1Api(readiness.api_client(paths.kubeconfig))
        return all(_ready_replicas(apps, name) >= 1 for name in SERVICE_PORTS)
    except (ApiException, urllib3.exceptions.HTTPError):
        return False


def outage(paths: LocalPaths, state: ServicesState, name: str, seconds: float) -> None:
    """`minio` or `mlflow` down for `seconds`: its Deployment scaled to 0 until its Pod is
    gone, then back to 1, its data kept on the claim and its address on the Service."""
    k8s = readiness.api_client(paths.kubeconfig)
    apps, core = client.AppsV1Api(k8s), client.CoreV1Api(k8s)
    selector = f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component={name}"

    def scale(replicas: int) -> None:
        apps.patch_namespaced_deployment_scale(deployment_name(name), NAMESPACE,
                                               {"spec": {"replicas": replicas}})

    scale(0)
    wait_for(f"{name}'s Pod gone", lambda: not core.list_namespaced_pod(
        NAMESPACE, label_selector=selector).items, timeout=120, interval=0.2)
    time.sleep(seconds)
    scale(1)
    wait_for(f"{name} ready again", lambda: _ready_replicas(apps, name) >= 1, timeout=180,
             interval=0.2)
    _wait_healthy(state, name)


def down(paths: LocalPaths) -> None:
    """Delete the release's namespace without waiting (`make down` stops the cluster next)."""
    try:
        client.CoreV1Api(readiness.api_client(paths.kubeconfig)).delete_namespace(NAMESPACE)
    except ApiException as error:
        if error.status != 404:
            raise
    except urllib3.exceptions.HTTPError:  # no cluster, so nothing runs in it
        pass
