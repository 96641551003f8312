"""The operator's metrics in the chart: the port its pods serve /metrics on, the Service in
front of them, and the optional ServiceMonitor."""

from __future__ import annotations

from mlcycle.settings import Settings
from tests.unit.chart_rendering import NAMESPACE, Manifest, of_kind, render

OPERATOR = "rel-mlcycle-operator"


def operator_container(documents: list[Manifest]) -> Manifest:
    deployment = next(d for d in of_kind(documents, "Deployment")
                      if d["metadata"]["name"] == OPERATOR)
    container: Manifest = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


def test_by_default_the_operator_serves_metrics_behind_a_service_without_a_monitor() -> None:
    documents = render()
    container = operator_container(documents)
    env = {e["name"]: e.get("value") for e in container["env"]}
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert Settings.from_env(env).metrics_port == ports["metrics"] == 9090
    service = next(s for s in of_kind(documents, "Service")
                   if s["metadata"]["name"] == OPERATOR)
    assert service["spec"]["ports"] == [{"name": "metrics", "port": 9090,
                                         "targetPort": "metrics"}]
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == "operator"
    assert of_kind(documents, "ServiceMonitor") == []
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}


def test_the_service_monitor_scrapes_the_metrics_service_of_this_release() -> None:
    documents = render("--set", "metrics.serviceMonitor.enabled=true",
                       "--set", "metrics.serviceMonitor.interval=15s",
                       "--set", "metrics.serviceMonitor.labels.release=prometheus",
                       "--set", "metrics.port=9191")
    [monitor] = of_kind(documents, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics",
                                             "interval": "15s"}]
    selected = [s for s in of_kind(documents, "Service")
                if monitor["spec"]["selector"]["matchLabels"].items()
                <= s["metadata"]["labels"].items()]
    assert [s["metadata"]["name"] for s in selected] == [OPERATOR]
    assert selected[0]["spec"]["ports"][0]["port"] == 9191
    assert {p["name"]: p["containerPort"]
            for p in operator_container(documents)["ports"]}["metrics"] == 9191


def test_metrics_off_serves_none_and_creates_no_service_or_monitor() -> None:
    documents = render("--set", "metrics.enabled=false",
                       "--set", "metrics.serviceMonitor.enabled=true")
    container = operator_container(documents)
    assert "MLCYCLE_METRICS_PORT" not in {e["name"] for e in container["env"]}
    assert "metrics" not in {p["name"] for p in container["ports"]}
    assert OPERATOR not in {s["metadata"]["name"] for s in of_kind(documents, "Service")}
    assert of_kind(documents, "ServiceMonitor") == []
