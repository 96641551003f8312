"""`make demo`: bring the local cluster up and show it doing real work.

Applies the examples under `examples/localkube/` into the `demo` namespace: a Python Job
(run by the real Job controller, reported through its termination message) and a
two-replica web Deployment behind a Service, then prints what came back.
"""

from __future__ import annotations

import json
import subprocess
import urllib.request

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from localkube import cluster
from localkube.paths import REPO_ROOT
from localkube.readiness import api_client, wait_for_default_service_account
from localkube.testing import wait_for

NAMESPACE = "demo"


def main() -> None:
    state = cluster.up()
    k8s = api_client(state.kubeconfig)
    core = client.CoreV1Api(k8s)
    try:
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
    except ApiException as error:
        if error.status != 409:
            raise
    wait_for_default_service_account(state.kubeconfig, NAMESPACE, timeout=60)
    kubectl = [str(state.kubectl), "--kubeconfig", str(state.kubeconfig), "-n", NAMESPACE]
    subprocess.run([*kubectl, "delete", "job", "hello", "--ignore-not-found"], check=True)
    for example in ("job.yaml", "web.yaml"):
        subprocess.run([*kubectl, "apply", "-f", str(REPO_ROOT / "examples/localkube" / example)],
                       check=True)

    def finished_pod() -> client.V1Pod | None:
        pods = core.list_namespaced_pod(NAMESPACE, label_selector="job-name=hello").items
        return next((p for p in pods if p.status.phase in ("Succeeded", "Failed")), None)

    pod = wait_for("the hello Job's pod to finish", finished_pod, timeout=120)
    terminated = pod.status.container_statuses[0].state.terminated
    print(f"\nJob hello: pod {pod.metadata.name} {pod.status.phase}, exit code "
          f"{terminated.exit_code}, termination message {json.loads(terminated.message)}")

    def ready_web_pods() -> list[client.V1Pod] | None:
        pods = core.list_namespaced_pod(NAMESPACE, label_selector="app=web").items
        ready = [p for p in pods if any(c.type == "Ready" and c.status == "True"
                                        for c in p.status.conditions or [])]
        return ready if len(ready) == 2 else None

    for pod in wait_for("2 ready web pods", ready_web_pods, timeout=120):
        url = f"http://{pod.status.pod_ip}:8080/index.html"
        with urllib.request.urlopen(url, timeout=5) as response:
            print(f"GET {url} -> {response.status} {response.read().decode().strip()}")
    print(f"\nkubectl: export KUBECONFIG={state.kubeconfig}; "
          f"{state.kubectl} get pods -n demo -o wide\nStop everything with: make down")


if __name__ == "__main__":
    main()
