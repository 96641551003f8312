"""Prometheus metrics of one server, in a registry of its own (tests build many apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from mlcycle_contract.drift import DriftScores

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServingMetrics:
    """Request, batch and model metrics, named `mlcycle_serving_*`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "mlcycle_serving_requests",
            "HTTP requests by route template, method and status code.",
            ["route", "method", "code"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "mlcycle_serving_request_duration_seconds",
            "Time from request start to response sent, by route template.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_rows = Histogram(
            "mlcycle_serving_batch_rows",
            "Rows per predict call (after micro-batching).",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.batch_requests = Histogram(
            "mlcycle_serving_batch_requests",
            "Requests merged into one predict call.",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.predict_seconds = Histogram(
            "mlcycle_serving_predict_duration_seconds",
            "Time of one predict call, including merging and splitting.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.rows_predicted = Counter(
            "mlcycle_serving_rows_predicted",
            "Rows predicted.",
            registry=self.registry,
        )
        self.model_info = Gauge(
            "mlcycle_serving_model_info",
            "The served model (always 1): name in URLs, registered version, flavor.",
            ["name", "version", "flavor"],
            registry=self.registry,
        )
        self.model_ready = Gauge(
            "mlcycle_serving_model_ready",
            "1 once the model is loaded and serving, else 0.",
            registry=self.registry,
        )
        self.load_seconds = Gauge(
            "mlcycle_serving_model_load_seconds",
            "Time the model took to load at start-up.",
            registry=self.registry,
        )

        self.drift_monitoring = Gauge(
            "mlcycle_serving_drift_monitoring",
            "1 while inputs are counted against the version's drift reference, else 0.",
            registry=self.registry,
        )
        self.drift_score = Gauge(
            "mlcycle_serving_drift_score",
            "Drift of a feature over the window: PSI (numeric) or Jensen-Shannon distance.",
            ["feature", "kind"],
            registry=self.registry,
        )
        self.drift_missing_shift = Gauge(
            "mlcycle_serving_drift_missing_shift",
            "Live minus training missing rate of a feature over the window.",
            ["feature"],
            registry=self.registry,
        )
        self.drift_window_rows = Gauge(
            "mlcycle_serving_drift_window_rows",
            "Rows in the drift window.",
            registry=self.registry,
        )
        self.drift_detected = Gauge(
            "mlcycle_serving_drift_detected",
            "1 when some feature drifted over a window of at least the minimum rows.",
            registry=self.registry,
        )

    def drift_scored(self, scores: DriftScores) -> None:
        self.drift_window_rows.set(scores.rows)
        self.drift_detected.set(int(scores.detected))
        for feature in scores.features:
            if feature.score is not None:
                self.drift_score.labels(feature=feature.name, kind=feature.kind.value).set(
                    feature.score
                )
            self.drift_missing_shift.labels(feature=feature.name).set(feature.missing_shift)

    def observe_batch(self, rows: int, requests: int, seconds: float) -> None:
        self.batch_rows.observe(rows)
        self.batch_requests.observe(requests)
        self.predict_seconds.observe(seconds)
        self.rows_predicted.inc(rows)

    def model_loaded(self, name: str, version: str, flavor: str, load_seconds: float) -> None:
        self.model_info.labels(name=name, version=version, flavor=flavor).set(1)
        self.model_ready.set(1)
        self.load_seconds.set(load_seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
