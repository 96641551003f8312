"""What one benchmark run measured, and the ratios and targets derived from it (pure)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from bench.serving.load import LoadResult

PEERS = ("mlflow", "kserve")
RATIO_MODELS = ("rf", "lr")


@dataclass(frozen=True)
class Scenario:
    rows: int
    connections: int

    @property
    def key(self) -> str:
        return f"b{self.rows}_c{self.connections}"

    @property
    def title(self) -> str:
        rows = "1 row" if self.rows == 1 else f"{self.rows} rows"
        return f"{rows} per request, concurrency {self.connections}"


SCENARIOS = (Scenario(1, 1), Scenario(1, 16), Scenario(100, 1), Scenario(100, 16))
HEADLINE = Scenario(1, 16)


@dataclass(frozen=True)
class Measurement:
    load: LoadResult
    peak_rss_bytes: int
    """Peak RSS of the server's process tree during this scenario (warm-up included)."""


@dataclass
class ServerRun:
    """One server serving one model: started, checked, loaded with every scenario."""

    model: str
    server: str
    cold_start_s: float
    measurements: dict[Scenario, Measurement] = field(default_factory=dict)
    peak_rss_bytes: int = 0


@dataclass(frozen=True)
class Target:
    description: str
    measured: float
    threshold: float
    higher_is_better: bool
    strict: bool = False

    @property
    def met(self) -> bool:
        if self.higher_is_better:
            return self.measured >= self.threshold
        if self.strict:
            return self.measured < self.threshold
        return self.measured <= self.threshold


Runs = dict[tuple[str, str], ServerRun]
"""(model, server) -> run."""


def ratio(runs: Runs, model: str, peer: str, scenario: Scenario, metric: str) -> float | None:
    """Ours / peer for `metric` ("rps", "p50" or "p99"); None if either is missing."""
    ours, theirs = runs.get((model, "ours")), runs.get((model, peer))
    if ours is None or theirs is None:
        return None
    mine, other = ours.measurements.get(scenario), theirs.measurements.get(scenario)
    if mine is None or other is None:
        return None
    values = {
        "rps": (mine.load.rps, other.load.rps),
        "p50": (mine.load.p50_ms, other.load.p50_ms),
        "p99": (mine.load.p99_ms, other.load.p99_ms),
    }[metric]
    return values[0] / values[1] if values[1] else None


def headline_ratios(runs: Runs) -> dict[str, float]:
    """The final JSON line: `<model>_b1_c16_vs_<peer>` (throughput) and `..._p99`."""
    found: dict[str, float] = {}
    for model in RATIO_MODELS:
        for suffix, metric in (("", "rps"), ("_p99", "p99")):
            for peer in PEERS:
                value = ratio(runs, model, peer, HEADLINE, metric)
                if value is not None:
                    found[f"{model}_{HEADLINE.key}_vs_{peer}{suffix}"] = round(value, 3)
    return dict(sorted(found.items(), key=lambda item: item[0].endswith("_p99")))


THROUGHPUT_TARGETS = {("rf", "mlflow"): 10.0, ("rf", "kserve"): 5.0}
THROUGHPUT_TARGETS |= {("lr", "mlflow"): 4.0, ("lr", "kserve"): 2.0}
PEER_TITLES = {"mlflow": "MLflow", "kserve": "KServe"}


def targets(runs: Runs) -> list[Target]:
    """The issue's targets: throughput multiples and a lower p99 at 1 row, concurrency
    16; a p50 no worse than the peers' at concurrency 1 (both request sizes)."""
    found: list[Target] = []
    for (model, peer), times in THROUGHPUT_TARGETS.items():
        peer_title = PEER_TITLES[peer]
        value = ratio(runs, model, peer, HEADLINE, "rps")
        if value is not None:
            found.append(
                Target(f"{model}, 1 row, c16: req/s ≥ {times:g}x {peer_title}", value, times, True)
            )
        value = ratio(runs, model, peer, HEADLINE, "p99")
        if value is not None:
            found.append(
                Target(f"{model}, 1 row, c16: p99 < {peer_title}'s", value, 1.0, False, strict=True)
            )
    for model in RATIO_MODELS:
        for scenario in (s for s in SCENARIOS if s.connections == 1):
            for peer in PEERS:
                value = ratio(runs, model, peer, scenario, "p50")
                if value is not None:
                    rows = f"{scenario.rows} row{'s' if scenario.rows > 1 else ''}"
                    found.append(
                        Target(
                            f"{model}, {rows}, c1: p50 ≤ {PEER_TITLES[peer]}'s", value, 1.0, False
                        )
                    )
    return found


def runs_as_json(runs: Runs) -> list[dict[str, Any]]:
    """Every measurement, for .local/bench/serving/results.json."""
    return [
        {
            "model": run.model,
            "server": run.server,
            "cold_start_s": run.cold_start_s,
            "peak_rss_bytes": run.peak_rss_bytes,
            "scenarios": {
                scenario.key: {
                    **asdict(measured.load),
                    "rps": measured.load.rps,
                    "peak_rss_bytes": measured.peak_rss_bytes,
                }
                for scenario, measured in run.measurements.items()
            },
        }
        for run in runs.values()
    ]
