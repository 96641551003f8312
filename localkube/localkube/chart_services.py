"""MinIO, MLflow and the operator for the local stack from the Helm chart, as a user installs
them: release `mlcycle` in namespace `mlcycle`, from the images built here, with the CRDs
left to the harness (`crds.enabled=false`; kopf's peering CRDs applied from the chart).

`up` installs MinIO and MLflow with the operator paused (`operator.replicas=0`); `run_operator`
then gives it one replica serving every namespace (`LOCALKUBE_OPERATOR=process` runs a local
process instead, localkube.stack). Every `up` starts from fresh data: the namespace goes, its
claims with it. The admin credentials are the chart's own Secrets, copied into the same 0600
files as the local processes' (localkube.services). The host and every Pod reach MinIO and
MLflow at their Services' ClusterIPs, through kube-proxy.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
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
OPERATOR = "operator"
KILL_POINTS_MOUNT = "/kill-points"
PEERING_CRDS = "templates/crds/kopfpeerings.kopf.dev.yaml"


def deployment_name(service: str) -> str:
    return f"{FULLNAME}-{service}"


def _selector(component: str) -> str:
    return f"app.kubernetes.io/instance={RELEASE},app.kubernetes.io/component={component}"


def _helm(paths: LocalPaths) -> release.Helm:
    return release.Helm.create(paths.kubeconfig, paths.root / "helm")


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
    helm = _helm(paths)
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


def _scale(paths: LocalPaths, component: str, replicas: int) -> None:
    apps = client.AppsV1Api(readiness.api_client(paths.kubeconfig))
    apps.patch_namespaced_deployment_scale(deployment_name(component), NAMESPACE,
                                           {"spec": {"replicas": replicas}})


def _scale_to_zero(paths: LocalPaths, component: str) -> None:
    """Its Deployment scaled to 0 until its Pods are gone."""
    core = client.CoreV1Api(readiness.api_client(paths.kubeconfig))
    _scale(paths, component, 0)
    wait_for(f"{component}'s Pods gone", lambda: not core.list_namespaced_pod(
        NAMESPACE, label_selector=_selector(component)).items, timeout=120, interval=0.2)


def _scale_to_one(paths: LocalPaths, component: str) -> None:
    apps = client.AppsV1Api(readiness.api_client(paths.kubeconfig))
    _scale(paths, component, 1)
    wait_for(f"{component} ready again (kubectl logs -n {NAMESPACE} "
             f"deployment/{deployment_name(component)})",
             lambda: _ready_replicas(apps, component) >= 1, timeout=180, interval=0.2)


def outage(paths: LocalPaths, state: ServicesState, name: str, seconds: float) -> None:
    """`minio` or `mlflow` down for `seconds`: its Deployment scaled to 0 until its Pod is
    gone, then back to 1, its data kept on the claim and its address on the Service."""
    _scale_to_zero(paths, name)
    time.sleep(seconds)
    _scale_to_one(paths, name)
    _wait_healthy(state, name)


def apply_peering_crds(paths: LocalPaths, stack_cluster: ClusterState) -> None:
    """kopf's KopfPeering and ClusterKopfPeering CRDs as the chart renders them. The harness
    owns them: a test's release that installed them with its CRDs leaves Helm's field manager
    behind, whose fields this apply takes over (the same content) instead of failing."""
    rendered = _helm(paths).run("template", RELEASE, str(release.CHART),
                                "--show-only", PEERING_CRDS).stdout
    subprocess.run([str(stack_cluster.kubectl), "--kubeconfig",
                    str(stack_cluster.kubeconfig), "apply", "--server-side", "--force-conflicts",
                    "-f", "-"],
                   input=rendered, capture_output=True, text=True, check=True, timeout=120)


def run_operator(paths: LocalPaths, stack_cluster: ClusterState, workload_images: dict[str, str],
                 mlflow_ui_url: str, progress: build.Progress = build.say) -> None:
    """The chart's operator, one replica serving every namespace, on the operator image built
    from the current sources (rebuilt when they changed) and the given trainer and serving
    images; run links in statuses point at `mlflow_ui_url`, which the host reaches."""
    started = time.monotonic()
    built = node.load_images(paths, (OPERATOR,), stack_cluster.nodes, progress)
    apply_peering_crds(paths, stack_cluster)
    _helm(paths).run(
        "upgrade", RELEASE, str(release.CHART), "--namespace", NAMESPACE, "--reuse-values",
        "--wait", "--timeout", "6m", "--set", "operator.replicas=1",
        "--set", "operator.clusterWide=true", "--set", f"mlflow.uiURL={mlflow_ui_url}",
        *release.image_values("image", built[OPERATOR]),
        *release.image_values("workloads.trainerImage", workload_images["trainer"]),
        *release.image_values("workloads.servingImage", workload_images["serving"]),
        *kill_points_values(paths))
    progress(f"The chart's operator runs (kubectl logs -n {NAMESPACE} "
             f"deployment/{deployment_name(OPERATOR)}), in {time.monotonic() - started:.0f} s")


def kill_points_values(paths: LocalPaths) -> list[str]:
    """The host's kill-points directory in the operator's Pod, and MLCYCLE_KILL_POINTS naming
    its file (mlcycle.faults), as the local process has it: a hostPath volume, which this local
    stack sets through the chart's extraVolumes and a user's release never does. Writable by
    all: the container's user records the points that fired."""
    directory = paths.kill_points.parent
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o777)
    volume = {"name": "kill-points", "hostPath": {"path": str(directory), "type": "Directory"}}
    mount = {"name": "kill-points", "mountPath": KILL_POINTS_MOUNT}
    variable = {"name": "MLCYCLE_KILL_POINTS",
                "value": f"{KILL_POINTS_MOUNT}/{paths.kill_points.name}"}
    return ["--set-json", f"operator.extraVolumes={json.dumps([volume])}",
            "--set-json", f"operator.extraVolumeMounts={json.dumps([mount])}",
            "--set-json", f"operator.extraEnv={json.dumps([variable])}"]


def operator_pod(paths: LocalPaths) -> client.V1Pod:
    """The chart's one operator Pod (`run_operator` runs one replica)."""
    core = client.CoreV1Api(readiness.api_client(paths.kubeconfig))
    pods = [pod for pod in core.list_namespaced_pod(
        NAMESPACE, label_selector=_selector(OPERATOR)).items
        if pod.metadata.deletion_timestamp is None]
    if len(pods) != 1:
        raise RuntimeError(f"{len(pods)} operator Pods in {NAMESPACE}, where one should run")
    return pods[0]


def _restarts(pod: client.V1Pod) -> int:
    statuses = pod.status.container_statuses or []
    return statuses[0].restart_count if statuses else 0


def operator_restarts(paths: LocalPaths) -> int:
    """How many times the kubelet has restarted the operator's container."""
    return _restarts(operator_pod(paths))


def kill_operator(paths: LocalPaths) -> None:
    """SIGKILL the operator container's main process, as a crash or the OOM killer would;
    return once the kubelet has started the container again."""
    pod = operator_pod(paths)
    restarts = _restarts(pod)
    os.kill(node.container_pid(paths, pod), signal.SIGKILL)
    wait_for("the kubelet to restart the operator's container",
             lambda: operator_restarts(paths) > restarts, timeout=60, interval=0.2)


def operator_running(paths: LocalPaths) -> bool:
    try:
        apps = client.AppsV1Api(readiness.api_client(paths.kubeconfig))
        return _ready_replicas(apps, OPERATOR) >= 1
    except (ApiException, urllib3.exceptions.HTTPError):
        return False


def pause_operator(paths: LocalPaths) -> None:
    """The chart's operator scaled to 0 until its Pods are gone (nothing of it acts)."""
    _scale_to_zero(paths, OPERATOR)


def resume_operator(paths: LocalPaths) -> None:
    _scale_to_one(paths, OPERATOR)


def operator_log(paths: LocalPaths) -> str:
    """What the chart's operator Pods have logged (their current containers)."""
    core = client.CoreV1Api(readiness.api_client(paths.kubeconfig))
    pods = core.list_namespaced_pod(NAMESPACE, label_selector=_selector(OPERATOR)).items
    return "".join(core.read_namespaced_pod_log(pod.metadata.name, NAMESPACE)
                   for pod in pods)


def down(paths: LocalPaths) -> None:
    """Delete the release's namespace without waiting (`make down` stops the cluster next)."""
    try:
        client.CoreV1Api(readiness.api_client(paths.kubeconfig)).delete_namespace(NAMESPACE)
    except ApiException as error:
        if error.status != 404:
            raise
    except urllib3.exceptions.HTTPError:  # no cluster, so nothing runs in it
        pass
