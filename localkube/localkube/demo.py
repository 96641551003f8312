"""`make demo`: the ML lifecycle on the local cluster, end to end.

Brings the stack up (cluster, MinIO, MLflow, the operator), applies the three iris examples
into the `demo` namespace exactly as a user would (`kubectl apply -f examples/iris/`), waits
for data -> training -> registry -> serving, and prints what each stage produced, then
predictions from the served model, fetched through its Service's ClusterIP, next to the
true labels.
"""

from __future__ import annotations

from typing import Any

import httpx
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from sklearn.datasets import load_iris

from localkube import stack
from localkube.paths import REPO_ROOT
from localkube.readiness import api_client, wait_for_default_service_account
from localkube.testing import wait_for

NAMESPACE = "demo"
GROUP, VERSION = "mlcycle.dev", "v1alpha1"


def read(objects: client.CustomObjectsApi, plural: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = objects.get_namespaced_custom_object(
        GROUP, VERSION, NAMESPACE, plural, name)
    return found


def wait_phase(objects: client.CustomObjectsApi, plural: str, name: str,
               phases: tuple[str, ...]) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        found = read(objects, plural, name)
        return found if (found.get("status") or {}).get("phase") in phases else None

    found = wait_for(f"{plural}/{name}", reached, timeout=600, interval=1)
    if found["status"]["phase"] not in ("Ready", "Succeeded", "Available"):
        ready = next(c for c in found["status"]["conditions"] if c["type"] == "Ready")
        raise SystemExit(f"{plural}/{name} {found['status']['phase']}: {ready['message']}")
    return found


def main() -> None:
    running = stack.up()
    k8s = api_client(running.cluster.kubeconfig)
    try:
        client.CoreV1Api(k8s).create_namespace(
            client.V1Namespace(metadata=client.V1ObjectMeta(name=NAMESPACE)))
    except ApiException as error:
        if error.status != 409:
            raise
    wait_for_default_service_account(running.cluster.kubeconfig, NAMESPACE, timeout=60)
    applied = running.kubectl("apply", "-n", NAMESPACE, "-f", str(REPO_ROOT / "examples/iris"))
    print(f"\n$ kubectl apply -n {NAMESPACE} -f examples/iris/\n{applied.stdout}")

    objects = client.CustomObjectsApi(k8s)
    dataset = wait_phase(objects, "datasets", "iris", ("Ready", "Failed"))["status"]
    top = ", ".join(f["name"] for f in dataset["profile"]["topFeatures"][:3])
    print(f"Dataset iris: version {dataset['version']}, {dataset['rows']} rows, "
          f"{dataset['columns']} columns; most informative: {top}\n"
          f"  snapshot {dataset['snapshotURI']}\n  report   {dataset['profile']['reportURI']}")

    trained = wait_phase(objects, "trainingjobs", "iris-rf", ("Succeeded", "Failed"))["status"]
    metrics = trained["metrics"]
    print(f"TrainingJob iris-rf: accuracy {metrics['accuracy']:.3f}, f1_macro "
          f"{metrics['f1_macro']:.3f}, 5-fold CV accuracy {metrics['cv_accuracy_mean']:.3f}"
          f" +/- {metrics['cv_accuracy_std']:.3f}, p50 latency {metrics['latency_p50_ms']:.2f} ms"
          f"\n  registered {trained['model']['uri']} (alias champion)"
          f"\n  MLflow run {trained['mlflow']['runURL']}")

    version = trained["model"]["version"]

    def serving_trained_version() -> dict[str, Any] | None:
        status = read(objects, "modeldeployments", "iris").get("status") or {}
        return status if status.get("servedVersion") == version else None

    served = wait_for(f"modeldeployments/iris to serve version {version}",
                      serving_trained_version, timeout=600, interval=1)
    core = client.CoreV1Api(k8s)
    pods = core.list_namespaced_pod(
        NAMESPACE, label_selector="mlcycle.dev/model-deployment=iris").items
    addresses = sorted(p.status.pod_ip for p in pods if p.metadata.deletion_timestamp is None)
    service = core.read_namespaced_service("iris", NAMESPACE).spec
    # The Service's ClusterIP routes from this host too (kube-proxy), to a ready replica.
    endpoint = (f"http://{service.cluster_ip}:{service.ports[0].port}"
                "/v2/models/iris-classifier/infer")
    print(f"ModelDeployment iris: version {served['servedVersion']} on "
          f"{served['readyReplicas']} replicas (pods {', '.join(addresses)}) behind Service "
          f"iris at {service.cluster_ip} (in-cluster {served['url']})")

    iris = load_iris(as_frame=True)
    rows = iris.data.iloc[[0, 25, 50, 75, 100, 125]]
    body = {"inputs": [{"name": column, "shape": [len(rows)], "datatype": "FP64",
                        "data": rows[column].tolist()} for column in rows.columns]}
    predicted = httpx.post(endpoint, json=body, timeout=30).json()["outputs"][0]["data"]
    names = iris.target_names
    print(f"\nPredictions from the served model, through the Service ({endpoint}):")
    for index, label in zip(rows.index, predicted, strict=True):
        truth = int(iris.target[index])
        mark = "ok" if label == truth else "MISS"
        print(f"  row {index:3d}  predicted {names[label]:<10}  true {names[truth]:<10}  {mark}")
    print(f"\nMLflow UI:           {running.services.mlflow_url}"
          f"\nPrediction endpoint: {endpoint}"
          f"\nkubectl:             export KUBECONFIG={running.cluster.kubeconfig} "
          f"PATH={running.paths.bin}:$PATH; kubectl get mlcycle -n {NAMESPACE}"
          "\nStop everything:     make down")


if __name__ == "__main__":
    main()
