"""Drift monitoring in the model server, in process (no cluster): `python -m bench.serving.drift`.

(i) Detection delay: a window full of rows from the training distribution, then every
request (1 row) has feature 0 shifted by one standard deviation; requests until the window's
scores say detected, checked after every request (the finest an operator poll can see).
(ii) False alarms: 10,000 requests drawn from the training distribution (rows of the
training set drawn at random with replacement), checked after every request.
(iii) Throughput cost at 1 row per request, concurrency 16, for a random forest and a
logistic regression (bench.serving.models, breast_cancer, 30 features): the ASGI app
driven directly (no sockets, no HTTP parser), monitoring off and on, interleaved, 3 rounds,
median, with a second app with monitoring off as a control of the noise. Without the HTTP
layer the app's own cost is all there is, so the fraction lost is larger than behind
uvicorn. (iv) The monitor's own cost per predicted batch of 1 and of 16 rows (timeit).

Writes the `serving-drift` section of docs/benchmarks.md and prints one JSON line last.
"""

from __future__ import annotations

import asyncio
import functools
import json
import statistics
import tempfile
import time
import timeit
from pathlib import Path
from typing import Any

import numpy as np

from bench.sections import machine, replace_section
from bench.serving.models import prepare_models
from mlcycle_contract.drift import REFERENCE_ARTIFACT, DriftReference, numeric_reference
from mlcycle_serving.app import ServingApp, create_app
from mlcycle_serving.drift import DriftMonitor, DriftSettings
from mlcycle_serving.model import Model
from mlcycle_serving.settings import ServerSettings

CONCURRENCY = 16
ROUNDS = 3
SECONDS = 4.0
WARM_ROWS = 1000
FALSE_ALARM_REQUESTS = 10_000
DETECTION_LIMIT = 500


def reference_of(x: np.ndarray, names: tuple[str, ...]) -> DriftReference:
    return DriftReference(
        rows=len(x), features=[numeric_reference(n, x[:, i]) for i, n in enumerate(names)]
    )


def observe_microseconds(x: np.ndarray) -> dict[int, float]:
    """The monitor's cost per predicted batch, best of 5 repeats of 5,000 calls."""
    names = tuple(str(i) for i in range(x.shape[1]))
    monitor = DriftMonitor(reference_of(x, names), names, DriftSettings(enabled=True))
    found = {}
    for rows in (1, 16):
        call = functools.partial(monitor.observe, x[:rows])
        found[rows] = min(timeit.repeat(call, number=5000, repeat=5)) / 5000 * 1e6
    return found


def detection_and_false_alarms(x: np.ndarray, settings: DriftSettings) -> dict[str, int]:
    names = tuple(str(i) for i in range(x.shape[1]))
    reference = reference_of(x, names)
    rng = np.random.default_rng(0)

    def request() -> np.ndarray:
        row: np.ndarray = x[rng.integers(len(x))][None, :]
        return row

    alarms = DriftMonitor(reference, names, settings)
    false_alarms = 0
    for _ in range(FALSE_ALARM_REQUESTS):
        alarms.observe(request())
        false_alarms += int(alarms.scores().detected)

    monitor = DriftMonitor(reference, names, settings)
    for _ in range(WARM_ROWS):
        monitor.observe(request())
    shift = np.zeros(x.shape[1])
    shift[0] = x[:, 0].std()
    delay = -1
    for sent in range(1, 5 * settings.window_rows + 1):
        monitor.observe(request() + shift)
        if monitor.scores().detected:
            delay = sent
            break
    return {"drift_detection_requests": delay, "drift_false_alarms": false_alarms}


async def _closed_loop(app: ServingApp, body: bytes, seconds: float) -> float:
    """Requests per second of CONCURRENCY clients, each sending as soon as answered."""
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/invocations",
        "headers": [(b"content-type", b"application/json")],
    }
    done = 0
    deadline = time.perf_counter() + seconds

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def client() -> None:
        nonlocal done
        status: list[int] = []

        async def send(message: Any) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])

        while time.perf_counter() < deadline:
            status.clear()
            await app(dict(scope), receive, send)
            if status != [200]:
                raise RuntimeError(f"request failed: {status}")
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
    return done / (time.perf_counter() - started)


async def _throughput(apps: dict[str, ServingApp], body: bytes) -> dict[str, list[float]]:
    for app in apps.values():
        app.batcher.start()
        await _closed_loop(app, body, 0.5)  # warm-up
    runs: dict[str, list[float]] = {key: [] for key in apps}
    order = list(apps)
    for _ in range(ROUNDS):
        for key in order:  # interleaved, the order flipped every round: off on, on off, ...
            runs[key].append(await _closed_loop(apps[key], body, SECONDS))
        order.reverse()
    for app in apps.values():
        await app.batcher.close()
    return runs


def throughput_cost(work: Path) -> dict[str, dict[str, Any]]:
    from sklearn.datasets import load_breast_cancer

    x = np.asarray(load_breast_cancer(return_X_y=True)[0], dtype=np.float64)
    results: dict[str, dict[str, Any]] = {}
    for bench_model in prepare_models(work):
        model = Model(str(bench_model.mlflow_dir), name=bench_model.key)
        model.load()
        reference = bench_model.mlflow_dir / REFERENCE_ARTIFACT  # a local model's place
        reference.parent.mkdir()
        reference.write_text(reference_of(x, model.input_schema.names).model_dump_json())
        off = create_app(model, ServerSettings(model_uri=model.uri))
        control = create_app(model, ServerSettings(model_uri=model.uri))
        on = create_app(model, ServerSettings(model_uri=model.uri, drift=DriftSettings(True)))
        assert on.drift is not None, on.drift_error
        body = bench_model.payloads[1].body("inputs")
        runs = asyncio.run(_throughput({"off": off, "on": on, "control": control}, body))
        off_rps, on_rps = statistics.median(runs["off"]), statistics.median(runs["on"])
        control_rps = statistics.median(runs["control"])
        assert on.drift.counts().rows > 0  # it counted
        results[bench_model.key] = {
            "title": bench_model.title,
            "off": runs["off"],
            "on": runs["on"],
            "control": runs["control"],
            "cost": 1 - on_rps / off_rps,
            "noise": 1 - control_rps / off_rps,
        }
    return results


def render(
    detection: dict[str, int], costs: dict[str, dict[str, Any]], observe: dict[int, float]
) -> str:
    settings = DriftSettings(enabled=True)
    lines = [
        "## Drift monitoring in the model server (`python -m bench.serving.drift`)",
        "",
        f"Machine: {machine()}.",
        "",
        f"Window {settings.window_rows} rows in 10 sub-windows, PSI threshold "
        f"{settings.psi}, at least {settings.min_rows} rows; breast_cancer's 30 features, "
        "10 quantile bins each. Scores checked after every request.",
        "",
        "| measure | result | target |",
        "| --- | --- | --- |",
        f"| requests until a 1 sd shift of one feature is detected | "
        f"{detection['drift_detection_requests']} | <= {DETECTION_LIMIT} |",
        f"| false alarms over {FALSE_ALARM_REQUESTS:,} requests from the training distribution "
        f"| {detection['drift_false_alarms']} | 0 |",
        "",
        f"Throughput at 1 row per request, concurrency {CONCURRENCY}, the ASGI app driven in "
        f"process (no sockets, no HTTP parser: the app's own cost only, so the share lost is "
        f"larger than behind uvicorn); {ROUNDS} rounds of {SECONDS:.0f} s, off and on "
        "interleaved (order flipped each round), median. The control is a second app with "
        "monitoring off: its difference from the first is this machine's noise.",
        "",
        "| model | off (req/s) | on (req/s) | control, off (req/s) | rounds off / on / control "
        "| lost with monitoring on | control's difference | target |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for result in costs.values():
        rounds = " / ".join(
            ", ".join(f"{value:.0f}" for value in result[key]) for key in ("off", "on", "control")
        )
        lines.append(
            f"| {result['title']} | {statistics.median(result['off']):.0f} "
            f"| {statistics.median(result['on']):.0f} "
            f"| {statistics.median(result['control']):.0f} | {rounds} | {result['cost']:.1%} "
            f"| {result['noise']:.1%} | <= 5% |"
        )
    lines += [
        "",
        f"The monitor's own cost per predicted batch (30 features, timeit, best of 5): "
        f"{observe[1]:.1f} us for 1 row, {observe[16]:.1f} us for 16 rows (1-row batches wait "
        "to be counted together).",
    ]
    return "\n".join(lines)


def main() -> None:
    from sklearn.datasets import load_breast_cancer

    x = np.asarray(load_breast_cancer(return_X_y=True)[0], dtype=np.float64)
    detection = detection_and_false_alarms(x, DriftSettings(enabled=True))
    print(json.dumps(detection), flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-drift-") as work:
        costs = throughput_cost(Path(work))
    observe = observe_microseconds(x)
    replace_section("serving-drift", render(detection, costs, observe))
    summary: dict[str, Any] = {
        **{f"{key}_b1_c{CONCURRENCY}_drift_cost": round(r["cost"], 4) for key, r in costs.items()},
        **detection,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
