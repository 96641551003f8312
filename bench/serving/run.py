"""Run the serving benchmark: `python -m bench.serving.run` (what `make bench-serving` does).

Trains and saves the two models, then for each model starts each server in turn (never
two at once), measures its cold start, checks its predictions, loads it with every
scenario (wrk, warm-up then a timed run), and stops it. Writes the serving section of
docs/benchmarks.md, prints the results, and prints last one JSON line: our throughput
and p99 divided by each peer's at 1 row, concurrency 16.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from bench.sections import DOC, replace_section
from bench.serving.kserve_env import REPORTED, ensure_kserve_venv, venv_versions
from bench.serving.load import ensure_wrk, run_wrk, write_script, wrk_version
from bench.serving.models import BenchModel, prepare_models
from bench.serving.report import Setup, machine_facts, render_section
from bench.serving.results import (
    SCENARIOS,
    Measurement,
    Runs,
    ServerRun,
    headline_ratios,
    runs_as_json,
)
from bench.serving.servers import SERVERS, Tools, build_spec, compile_bytecode, free_port, running

REPO = Path(__file__).resolve().parents[2]
KSERVE_SCRIPT = Path(__file__).resolve().with_name("kserve_sklearn.py")


def _log(message: str) -> None:
    print(f"bench-serving: {message}", flush=True)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.serving.run", description=__doc__)
    parser.add_argument("--duration", type=int, default=10, help="seconds timed per scenario")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per scenario")
    parser.add_argument("--work-dir", type=Path, default=REPO / ".local" / "bench")
    parser.add_argument("--models", default="rf,lr", help="subset, for trying things out")
    parser.add_argument(
        "--servers", default=",".join(SERVERS), help="subset; docs are written for all only"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.duration <= 120 or not 0 <= args.warmup <= 60:
        parser.error("--duration must be in [1, 120] and --warmup in [0, 60]")
    return args


def _measure_model(
    model: BenchModel, servers: tuple[str, ...], tools: Tools, wrk: str, args: argparse.Namespace
) -> list[ServerRun]:
    runs = []
    work = args.work_dir / "serving"
    for key in servers:
        port = free_port()
        spec = build_spec(key, model, port, tools)
        _log(f"{model.key}: starting {key} on 127.0.0.1:{port}")
        with running(spec, port, model.payloads[1], work / "logs" / model.key) as server:
            for payload in model.payloads.values():
                server.check(payload)
            run = ServerRun(model.key, key, server.cold_start_s)
            _log(f"{model.key}/{key}: cold start {server.cold_start_s:.2f}s, predictions match")
            for scenario in SCENARIOS:
                script = write_script(
                    spec.body(model.payloads[scenario.rows]),
                    work / "requests",
                    f"{model.key}-{key}-{scenario.rows}",
                )
                server.rss.window_peak()
                if args.warmup:
                    run_wrk(wrk, server.url, script, scenario.connections, args.warmup)
                load = run_wrk(wrk, server.url, script, scenario.connections, args.duration)
                run.measurements[scenario] = Measurement(load, server.rss.window_peak())
                _log(
                    f"{model.key}/{key} {scenario.key}: {load.rps:,.0f} req/s, "
                    f"p50 {load.p50_ms:.2f} ms, p99 {load.p99_ms:.2f} ms, errors {load.errors}"
                )
            run.peak_rss_bytes = server.rss.overall
        runs.append(run)
    return runs


def _versions(kserve_python: Path, wrk: str) -> list[tuple[str, str]]:
    ours = {name: metadata.version(name) for name in ("scikit-learn", "numpy", "mlflow")}
    theirs = venv_versions(kserve_python, REPORTED)
    kserve_deps = ", ".join(f"{n} {theirs.get(n, '?')}" for n in REPORTED if n != "kserve")
    return [
        ("Python", platform.python_version()),
        ("scikit-learn", ours["scikit-learn"]),
        ("numpy", ours["numpy"]),
        ("mlflow", ours["mlflow"]),
        ("uvicorn (ours and MLflow's)", metadata.version("uvicorn")),
        ("kserve", f"{theirs.get('kserve', '?')} (own virtualenv: {kserve_deps})"),
        ("wrk", wrk_version(wrk)),
    ]


def _method(args: argparse.Namespace) -> list[str]:
    return [
        "Models: RandomForestClassifier(100 trees, random_state=0) and "
        "LogisticRegression(max_iter=10000) fitted on scikit-learn's breast_cancer "
        "(569 rows, 30 float features) as a numpy array, once per run; saved with "
        "`mlflow.sklearn.save_model` (skops format, tensor signature) for ours and MLflow, "
        "and the same fitted estimator as `model.joblib` for KServe.",
        "Requests: the first 1 and the first 100 rows of breast_cancer, the same rows for "
        "every server. Before timing, every server's predictions for both are checked "
        "against the estimator's.",
        f"Load: wrk, one thread, closed loop (each connection sends its next request "
        f"once answered), 1 and 16 connections; per scenario a {args.warmup} s warm-up "
        f"(discarded), then {args.duration} s timed. p50 and p99 from wrk's latency "
        "histogram; errors are socket errors, timeouts and non-2xx answers.",
        "Servers: one at a time, never two at once; one worker each, on 127.0.0.1 and a "
        "free port, each with its defaults (MLflow's uvicorn access log and KServe's "
        "per-request latency log stay on, as shipped; ours logs no line per request by "
        "default). Ours: `python -m mlcycle_serving` with MLCYCLE_MODEL_URI set to the "
        "model directory (micro-batching defaults: 64 rows, 2 ms). MLflow: `mlflow models "
        "serve -m DIR --env-manager local -h 127.0.0.1 -p PORT --workers 1`. KServe: "
        "`bench/serving/kserve_sklearn.py`, a `kserve.Model` doing what KServe's "
        "sklearnserver does (joblib.load in load(), predict on `instances`), started with "
        "`kserve.ModelServer(workers=1)`, gRPC off; kserve is installed in its own "
        "virtualenv (.local/bench/kserve-venv) with the project's scikit-learn, numpy "
        "and joblib versions. KServe binds 0.0.0.0 (hard-coded); all traffic is loopback.",
        "Cold start: from spawning the server process to its first correct 1-row "
        "prediction, polled every 10 ms (interpreter start, imports, model load).",
        "Peak RSS: resident memory summed over the server's process tree (MLflow's is the "
        "`mlflow` CLI and the uvicorn process it starts), sampled from /proc every 100 ms.",
    ]


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    args.work_dir = args.work_dir.absolute()
    models_wanted = [m for m in args.models.split(",") if m]
    servers = tuple(s for s in SERVERS if s in args.servers.split(","))
    date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    facts = machine_facts()
    wrk = ensure_wrk()
    project_bin = Path(sys.executable).parent  # not resolved: keep the virtualenv's python
    kserve_python = project_bin / "python"
    if "kserve" in servers:
        _log("preparing KServe's virtualenv")
        kserve_python = ensure_kserve_venv(args.work_dir / "kserve-venv", project_bin / "uv")
    tools = Tools(project_bin, kserve_python, KSERVE_SCRIPT)
    _log("compiling the servers' Python to bytecode, as the images are")
    compile_bytecode(tools)
    _log("training and saving the models")
    models = [m for m in prepare_models(args.work_dir / "serving") if m.key in models_wanted]
    if not models or not servers:
        raise SystemExit("nothing to run: check --models and --servers")

    runs: Runs = {}
    for model in models:
        for run in _measure_model(model, servers, tools, wrk, args):
            runs[(run.model, run.server)] = run

    protocols = {key: build_spec(key, models[0], 0, tools).protocol for key in servers}
    setup = Setup(
        date=date,
        facts=facts + _versions(kserve_python, wrk),
        method=_method(args),
        model_titles={m.key: m.title for m in models},
        protocols=protocols,
    )
    section = render_section(runs, setup, servers)
    (args.work_dir / "serving" / "results.json").write_text(
        json.dumps(runs_as_json(runs), indent=2) + "\n"
    )
    complete = servers == SERVERS and {m.key for m in models} == {"rf", "lr"}
    if complete:
        replace_section("serving", section)
        _log(f"wrote the serving section of {DOC}")
    else:
        _log("partial run: docs/benchmarks.md left alone")
    print(section, flush=True)
    print(json.dumps(headline_ratios(runs)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
