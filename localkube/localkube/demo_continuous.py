"""`make demo-continuous`: continuous training on the local cluster, with no person in the loop.

Applies examples/continuous/ (a Dataset served over http from this machine, a TrainingJob
that retrains on drift and promotes only a model at least as good as its champion, and a
ModelDeployment that monitors drift) and walks the loop:

1. the source changes: the flowers' petals grow 2 cm wider and the labels are new;
2. traffic with such inputs makes the deployment report drift;
3. retraining starts by itself;
4. the challenger beats the champion on the new data, and the alias moves;
5. the new version rolls out while traffic flows, with no failed request;
6. a second change (40% of the labels noise) gives a worse challenger: the alias stays;
7. drift again, within the TrainingJob's cooldown: held back, and an Event says so.

Each step is printed; the last line is one JSON object with the outcome. The e2e test
tests/e2e/test_continuous_loop.py runs the same `run()`.
"""

from __future__ import annotations

import http.server
import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx
import numpy as np
import pandas as pd
import yaml
from kubernetes import client
from sklearn.datasets import load_iris

from localkube import processes, services, stack
from localkube.paths import REPO_ROOT
from localkube.readiness import api_client, wait_for_default_service_account
from localkube.testing import wait_for

GROUP, VERSION = "mlcycle.dev", "v1alpha1"
NAME = "flowers"
EXAMPLES = REPO_ROOT / "examples" / "continuous"
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
TIMEOUT = 600.0


def flowers(change: int) -> pd.DataFrame:
    """The source's content after `change` changes: 0 is iris; 1 shifts petal width by 2 cm
    and relabels every class; 2 is 1 with 40% of the labels replaced by noise (seeded)."""
    iris = load_iris(as_frame=True)
    frame = iris.data.set_axis(FEATURES, axis=1)
    species = iris.target
    if change >= 1:
        frame["petal_width"] = frame["petal_width"] + 2.0
        species = (species + 1) % 3
    if change >= 2:
        rng = np.random.default_rng(3)
        noisy = rng.random(len(species)) < 0.4
        species = species.where(~noisy, pd.Series(rng.integers(0, 3, len(species))))
    return frame.round(2).assign(species=species)


class Source(http.server.BaseHTTPRequestHandler):
    """The published csv, with an ETag so that an unchanged check downloads nothing."""

    body: ClassVar[bytes] = b""

    def do_GET(self) -> None:
        etag = f'"{hash(self.body) & 0xFFFFFFFF:08x}"'
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.send_header("ETag", etag)
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @classmethod
    def publish(cls, change: int) -> None:
        cls.body = flowers(change).to_csv(index=False).encode()


@contextmanager
def published(host: str) -> Iterator[str]:
    """Serve the csv on this machine's bridge address, which the cluster's Pods reach."""
    Source.publish(0)
    with processes.serving_http(host, Source) as base:
        yield f"{base}/{NAME}.csv"


@dataclass
class Traffic:
    """Rows sent one per request, at about `rate` a second, to the Service, in a thread."""

    url: str
    rows: pd.DataFrame
    rate: float = 20.0
    sent: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Traffic:
        self._thread = threading.Thread(target=self._run, name="traffic", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _run(self) -> None:
        with httpx.Client(timeout=10) as http:
            while not self._stop.is_set():
                row = self.rows.iloc[[self.sent % len(self.rows)]]
                body = {"dataframe_split": {"columns": FEATURES, "data": row.values.tolist()}}
                try:
                    status = http.post(self.url, json=body).status_code
                except httpx.HTTPError as error:
                    status, detail = 0, f"{type(error).__name__}: {error}"
                else:
                    detail = f"HTTP {status}"
                self.sent += 1
                if status != 200:
                    self.failed += 1
                    self.errors.append(detail)
                time.sleep(1 / self.rate)


class Loop:
    """The three resources of the loop in one namespace, read the way `kubectl get` does."""

    def __init__(self, running: stack.Stack, namespace: str, model_name: str) -> None:
        self.running, self.namespace, self.model_name = running, namespace, model_name
        self.k8s = api_client(running.cluster.kubeconfig)
        self.objects = client.CustomObjectsApi(self.k8s)

    def read(self, plural: str) -> dict[str, Any]:
        found: dict[str, Any] = self.objects.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, plural, NAME)
        return found

    def status(self, plural: str) -> dict[str, Any]:
        return self.read(plural).get("status") or {}

    def until(self, what: str, found: Callable[[], Any]) -> Any:
        return wait_for(what, found, timeout=TIMEOUT, interval=1)

    def apply(self, source_url: str) -> None:
        documents = [yaml.safe_load((EXAMPLES / f"{kind}.yaml").read_text())
                     for kind in ("dataset", "trainingjob", "modeldeployment")]
        documents[0]["spec"]["source"]["url"] = source_url
        documents[1]["spec"]["registry"]["modelName"] = self.model_name
        documents[2]["spec"]["model"]["name"] = self.model_name
        cluster = self.running.cluster
        applied = subprocess.run(
            [str(cluster.kubectl), "--kubeconfig", str(cluster.kubeconfig), "apply", "-n",
             self.namespace, "-f", "-"],
            input=yaml.safe_dump_all(documents), capture_output=True, text=True, check=True,
            timeout=60)
        print(f"$ kubectl apply -n {self.namespace} -f examples/continuous/  "
              f"(source {source_url})\n{applied.stdout}")

    def dataset_version(self, other_than: str = "") -> str:
        def new() -> str | None:
            version = self.status("datasets").get("version")
            return version if version and version != other_than else None
        return str(self.until("a new Dataset version", new))

    def finished_run(self, number: int) -> dict[str, Any]:
        def ended() -> dict[str, Any] | None:
            runs = self.status("trainingjobs").get("runs") or []
            run = next((r for r in runs if r["number"] == number), None)
            return run if run is not None and run.get("completionTime") else None
        run: dict[str, Any] = self.until(f"training run {number}", ended)
        return run

    def champion(self) -> int | None:
        """The version the registry's `champion` alias points at."""
        answer = registry_call(self.running, "GET", "registered-models/get",
                               params={"name": self.model_name})
        aliases = {a["alias"]: int(a["version"])
                   for a in answer["registered_model"].get("aliases", [])}
        return aliases.get("champion")

    def served(self, version: int) -> dict[str, Any]:
        def serving() -> dict[str, Any] | None:
            status = self.status("modeldeployments")
            ready = status.get("phase") == "Available"
            return status if ready and status.get("servedVersion") == version else None
        served: dict[str, Any] = self.until(f"version {version} served", serving)
        return served

    def drifted(self) -> dict[str, Any] | None:
        conditions = self.status("modeldeployments").get("conditions") or []
        drifted = next((c for c in conditions if c["type"] == "Drifted"), None)
        return drifted if drifted is not None and drifted["status"] == "True" else None

    def endpoint(self) -> str:
        service = client.CoreV1Api(self.k8s).read_namespaced_service(NAME, self.namespace).spec
        # The Service's ClusterIP routes from this host too (kube-proxy), to a ready replica.
        return f"http://{service.cluster_ip}:{service.ports[0].port}/invocations"

    def events(self, reason: str) -> list[str]:
        listed = client.CoreV1Api(self.k8s).list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.name={NAME}").items
        return [e.message for e in listed if e.reason == reason]

    def request_run(self) -> None:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.objects.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "trainingjobs", NAME,
            {"metadata": {"annotations": {"mlcycle.dev/requested-at": now}}})


def registry_call(running: stack.Stack, method: str, endpoint: str,
                  **request: Any) -> dict[str, Any]:
    """One call to MLflow's REST API as its admin; {} for a model that does not exist."""
    admin = services.load_mlflow_admin(running.paths)
    answer = httpx.request(method, f"{running.services.mlflow_url}/api/2.0/mlflow/{endpoint}",
                           auth=(admin.username, admin.password), timeout=30, **request)
    if answer.status_code == 404:
        return {}
    answer.raise_for_status()
    found: dict[str, Any] = answer.json()
    return found


def run(running: stack.Stack, namespace: str, model_name: str = NAME) -> dict[str, Any]:
    """The loop in `namespace` (which must exist); the outcome as the JSON line's keys."""
    loop = Loop(running, namespace, model_name)
    with published(running.cluster.host_ip) as source_url:
        loop.apply(source_url)
        first = loop.dataset_version()
        run1 = loop.finished_run(1)
        loop.served(1)
        print(f"[0] Dataset {NAME} version {first}; run 1 registered version "
              f"{run1['modelVersion']} (champion), served by 2 replicas with drift monitoring")

        Source.publish(1)
        second = loop.dataset_version(other_than=first)
        print(f"[1] The source changed: petals 2 cm wider, new labels. Dataset version {second}")

        traffic = Traffic(loop.endpoint(), flowers(1)[FEATURES]).start()
        try:
            drifted = loop.until("drift", loop.drifted)
            detected_after = traffic.sent
            print(f"[2] Drift detected after {detected_after} requests: {drifted['message']}")

            run2 = loop.finished_run(2)
            print(f"[3] Retraining started by itself: run 2, trigger {run2['trigger']} "
                  f"({run2['reason']})")
            promoted = run2["gatesPassed"] is True and loop.champion() == run2["modelVersion"]
            champion = loop.status("trainingjobs").get("champion") or {}
            print(f"[4] Challenger version {run2['modelVersion']}: accuracy "
                  f"{loop.status('trainingjobs')['metrics']['accuracy']:.3f} against champion "
                  f"version {champion.get('version')} at "
                  f"{champion.get('metrics', {}).get('accuracy', float('nan')):.3f} on the new "
                  f"data; alias {'moved' if promoted else 'NOT moved'}")
            loop.served(run2["modelVersion"])
            time.sleep(5)  # traffic on the new version too
        finally:
            traffic.stop()
        rollout_failed = traffic.failed
        print(f"[5] Version {run2['modelVersion']} rolled out under traffic: {traffic.sent} "
              f"requests, {rollout_failed} failed" + (f" ({traffic.errors[:3]})"
                                                      if traffic.errors else ""))

        Source.publish(2)
        loop.dataset_version(other_than=second)
        loop.request_run()
        run3 = loop.finished_run(3)
        second_promoted = loop.champion() == run3["modelVersion"]
        validated = next(c for c in loop.read("trainingjobs")["status"]["conditions"]
                         if c["type"] == "Validated")
        print(f"[6] Second change (noisy labels), run 3 by request: version "
              f"{run3['modelVersion']} {'promoted' if second_promoted else 'not promoted'}: "
              f"{validated['message']}")

        traffic = Traffic(loop.endpoint(), flowers(0)[FEATURES]).start()
        try:
            held = loop.until("a held-back retraining", lambda: [
                message for message in loop.events("RetrainHeldBack")
                if "run 3 started" in message])
        finally:
            traffic.stop()
        status = loop.status("trainingjobs")
        cooldown_held = len(status.get("runs") or []) == 3 and any(
            h["trigger"] == "Drift" and h["reason"] == "Cooldown"
            for h in status.get("heldBack") or [])
        print(f"[7] Drift again, within the cooldown of run 3: {held[0]}")
    return {
        "drift_detected_after_requests": detected_after,
        "retrained": run2["trigger"] == "Drift",
        "promoted": promoted,
        "failed_requests": rollout_failed,
        "second_promoted": second_promoted,
        "cooldown_held": cooldown_held,
    }


def main() -> None:
    running = stack.up()
    namespace = "demo-continuous"
    core = client.CoreV1Api(api_client(running.cluster.kubeconfig))
    if any(n.metadata.name == namespace for n in core.list_namespace().items):
        core.delete_namespace(namespace)
        wait_for(f"namespace {namespace} deleted", lambda: not any(
            n.metadata.name == namespace for n in core.list_namespace().items), timeout=180)
    registry_call(running, "DELETE", "registered-models/delete", json={"name": NAME})
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    wait_for_default_service_account(running.cluster.kubeconfig, namespace, timeout=60)
    outcome = run(running, namespace)
    print(json.dumps(outcome))


if __name__ == "__main__":
    main()
