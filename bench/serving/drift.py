"""Drift monitoring in the model server, in process (no cluster): `python -m bench.serving.drift`.

(i) Detection delay: a window full of rows from the training distribution, then every
request (1 row) has feature 0 shifted by one standard deviation; requests until the window's
scores say detected, checked after every request (the finest an operator poll can see).
(ii) False alarms: 10,000 requests drawn from the training distribution (rows of the
training set drawn at random with replacement), checked after every request.
(iii) Throughput cost at 1 row per request, concurrency 16, for a random forest and a
logistic regression (bench.serving.models, breast_cancer, 30 features): three server
processes as a Pod runs them (`python -m mlcycle_serving`, uvicorn), monitoring off, on, and
off again as a control of the noise, loaded by wrk in turn, interleaved, 3 rounds, median.
(iv) The monitor's own cost per predicted batch of 1 and of 16 rows (timeit).

Writes the `serving-drift` section of docs/benchmarks.md and prints one JSON line last.
"""

from __future__ import annotations

import functools
import json
import statistics
import sys
import tempfile
import timeit
import urllib.request
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from bench.sections import machine, replace_section
from bench.serving.load import ensure_wrk, run_wrk, write_script
from bench.serving.models import BenchModel, prepare_models
from bench.serving.servers import HOST, RunningServer, Tools, build_spec, free_port, running
from mlcycle_contract.drift import DRIFT, REFERENCE_ARTIFACT, DriftReference, numeric_reference
from mlcycle_serving.drift import DriftMonitor, DriftSettings
from mlcycle_serving.model import Model

CONCURRENCY = 16
ROUNDS = 3
SECONDS = 5
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


def _serving(stack: ExitStack, model: BenchModel, tools: Tools, work: Path,
             drift: bool) -> RunningServer:
    """A server process for `model` under uvicorn, monitoring on or off, until `stack` ends."""
    port = free_port()
    spec = build_spec("ours", model, port, tools)
    spec.env[DRIFT.name] = "true" if drift else "false"
    name = "on" if drift else f"off-{port}"
    return stack.enter_context(running(spec, port, model.payloads[1], work / "logs" / name))


def throughput_cost(work: Path) -> dict[str, dict[str, Any]]:
    """Requests per second of wrk (1 row, CONCURRENCY connections) against three server
    processes of each model: monitoring off, on, and off again (the control)."""
    from sklearn.datasets import load_breast_cancer

    x = np.asarray(load_breast_cancer(return_X_y=True)[0], dtype=np.float64)
    wrk = ensure_wrk()
    tools = Tools(Path(sys.executable).parent, Path(sys.executable), Path(__file__))
    results: dict[str, dict[str, Any]] = {}
    for bench_model in prepare_models(work):
        model = Model(str(bench_model.mlflow_dir), name=bench_model.key)
        model.load()  # for its column names, which the reference must use
        names = model.input_schema.names
        reference = bench_model.mlflow_dir / REFERENCE_ARTIFACT  # a local model's place
        reference.parent.mkdir()
        reference.write_text(reference_of(x, names).model_dump_json())
        with ExitStack() as stack:
            servers = {key: _serving(stack, bench_model, tools, work, key == "on")
                       for key in ("off", "on", "control")}
            script = write_script(servers["on"].spec.body(bench_model.payloads[1]),
                                  work / "requests", bench_model.key)
            for server in servers.values():  # warm-up
                run_wrk(wrk, server.url, script, CONCURRENCY, 1)
            runs: dict[str, list[float]] = {key: [] for key in servers}
            order = list(servers)
            for _ in range(ROUNDS):  # interleaved, the order flipped every round
                for key in order:
                    load = run_wrk(wrk, servers[key].url, script, CONCURRENCY, SECONDS)
                    if load.errors:
                        raise RuntimeError(f"{key}: {load.errors} failed requests")
                    runs[key].append(load.rps)
                order.reverse()
            with urllib.request.urlopen(f"http://{HOST}:{servers['on'].port}/drift") as answer:
                window = json.loads(answer.read())
            assert window["counts"]["rows"] > 0, f"the monitoring server counted nothing: {window}"
        off_rps, on_rps = statistics.median(runs["off"]), statistics.median(runs["on"])
        results[bench_model.key] = {
            "title": bench_model.title,
            **runs,
            "cost": 1 - on_rps / off_rps,
            "noise": 1 - statistics.median(runs["control"]) / off_rps,
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
        f"Throughput at 1 row per request, concurrency {CONCURRENCY}: wrk (one thread, on "
        "the same two cores) against server processes as a Pod runs them (`python -m "
        f"mlcycle_serving`, uvicorn, one worker); {ROUNDS} rounds of {SECONDS} s, off, on and "
        "control interleaved (order flipped each round), median. The control is a second "
        "server with monitoring off: its difference from the first is this machine's noise.",
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
