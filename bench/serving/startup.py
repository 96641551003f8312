"""Cold start and peak memory of the three servers: `python -m bench.serving.startup`.

The focused part of `make bench-serving`, for a busy machine: no throughput, only the two
figures the skops-only server is meant to cut. For each model and each server, in
interleaved rounds (every server once, then again), a fresh server is started and timed to
its first correct 1-row prediction (the cold start), then loaded for a few seconds with
each request size at concurrency 16, while its process tree's RSS is sampled (the peak).
Each figure is the median over the rounds; ours ÷ theirs is the median of per-round
ratios. Writes the `serving-startup` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.sections import DOC, replace_section
from bench.serving.kserve_env import ensure_kserve_venv
from bench.serving.load import ensure_wrk, run_wrk, write_script
from bench.serving.models import BATCH_SIZES, BenchModel, prepare_models
from bench.serving.report import SERVER_TITLES, machine_facts
from bench.serving.servers import SERVERS, Tools, build_spec, compile_bytecode, free_port, running

REPO = Path(__file__).resolve().parents[2]
KSERVE_SCRIPT = Path(__file__).resolve().with_name("kserve_sklearn.py")
MIB = 1024 * 1024
RSS_TARGET_MIB = 200
COLD_START_TARGET_S = 2.0
CONNECTIONS = 16


@dataclass(frozen=True)
class Start:
    cold_start_s: float
    peak_rss_mib: float


Rounds = dict[tuple[str, str], list[Start]]
"""(model, server) -> one start per round."""


def _log(message: str) -> None:
    print(f"bench-serving-startup: {message}", flush=True)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.serving.startup", description=__doc__)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median)")
    parser.add_argument("--load-seconds", type=int, default=3, help="per request size")
    parser.add_argument("--work-dir", type=Path, default=REPO / ".local" / "bench")
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 15 or not 1 <= args.load_seconds <= 60:
        parser.error("--rounds in [1, 15], --load-seconds in [1, 60]")
    return args


def _start(model: BenchModel, server: str, tools: Tools, wrk: str,
           args: argparse.Namespace) -> Start:
    port = free_port()
    spec = build_spec(server, model, port, tools)
    work = args.work_dir / "serving-startup"
    with running(spec, port, model.payloads[1], work / "logs" / model.key) as started:
        for rows in BATCH_SIZES:
            started.check(model.payloads[rows])
            script = write_script(spec.body(model.payloads[rows]), work / "requests",
                                  f"{model.key}-{server}-{rows}")
            run_wrk(wrk, started.url, script, CONNECTIONS, args.load_seconds)
        started.rss.sample()
        return Start(started.cold_start_s, started.rss.overall / MIB)


def _median(starts: list[Start], field: str) -> float:
    return float(statistics.median(getattr(start, field) for start in starts))


def _ratio(rounds: Rounds, model: str, peer: str, field: str) -> float:
    ours, theirs = rounds[(model, "ours")], rounds[(model, peer)]
    return float(statistics.median(
        getattr(mine, field) / getattr(other, field)
        for mine, other in zip(ours, theirs, strict=True)))


def render_section(rounds: Rounds, models: list[BenchModel], facts: list[tuple[str, str]],
                   args: argparse.Namespace) -> str:
    targets = []
    for model in models:
        ours = rounds[(model.key, "ours")]
        rss, cold = _median(ours, "peak_rss_mib"), _median(ours, "cold_start_s")
        targets += [
            f"| {model.key}: peak RSS < {RSS_TARGET_MIB} MiB | {rss:.0f} MiB | "
            f"{'yes' if rss < RSS_TARGET_MIB else '**no**'} |",
            f"| {model.key}: cold start < {COLD_START_TARGET_S:g} s | {cold:.2f} s | "
            f"{'yes' if cold < COLD_START_TARGET_S else '**no**'} |",
        ]
    lines = [
        "## Serving: cold start and peak memory, side by side",
        "",
        f"Run of {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `python -m bench.serving.startup` "
        "(the focused mode of the serving benchmark: only these two figures).",
        "",
        *(f"- {name}: {value}" for name, value in facts),
        "",
        f"Method: the models, servers and requests of the section above; {args.rounds} "
        "interleaved rounds (each round starts every server once, one at a time). Cold "
        "start: from spawning the server process to its first correct 1-row prediction, "
        "polled every 10 ms; every server's Python is compiled to bytecode first, as the "
        "images compile it at build. Peak RSS: resident memory of the server's process tree, "
        f"sampled every 100 ms from start through {args.load_seconds} s of wrk load at "
        f"concurrency {CONNECTIONS} with 1 row and then 100 rows per request. Figures are "
        "medians over the rounds; ours ÷ theirs is the median of the per-round ratios. The "
        "machine is shared: the load average above says how busy it was.",
        "",
        "| target (ours, median) | measured | met |",
        "|---|--:|:-:|",
        *targets,
        "",
    ]
    for model in models:
        lines += [
            f"#### {model.title}",
            "",
            "| server | peak RSS MiB | ours ÷ it | cold start s | ours ÷ it | "
            "cold starts per round, s |",
            "|---|--:|--:|--:|--:|---|",
        ]
        for server in SERVERS:
            starts = rounds[(model.key, server)]
            ratio_cells = (["", ""] if server == "ours" else
                           [f"{_ratio(rounds, model.key, server, 'peak_rss_mib'):.2f}x",
                            f"{_ratio(rounds, model.key, server, 'cold_start_s'):.2f}x"])
            lines.append("| " + " | ".join([
                SERVER_TITLES[server],
                f"{_median(starts, 'peak_rss_mib'):.0f}", ratio_cells[0],
                f"{_median(starts, 'cold_start_s'):.2f}", ratio_cells[1],
                ", ".join(f"{start.cold_start_s:.2f}" for start in starts),
            ]) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    args.work_dir = args.work_dir.absolute()
    facts = machine_facts()
    wrk = ensure_wrk()
    project_bin = Path(sys.executable).parent  # not resolved: keep the virtualenv's python
    _log("preparing KServe's virtualenv")
    kserve_python = ensure_kserve_venv(args.work_dir / "kserve-venv", project_bin / "uv")
    tools = Tools(project_bin, kserve_python, KSERVE_SCRIPT)
    _log("compiling the servers' Python to bytecode, as the images are")
    compile_bytecode(tools)
    _log("training and saving the models")
    models = prepare_models(args.work_dir / "serving-startup")
    rounds: Rounds = {}
    for number in range(1, args.rounds + 1):
        for model in models:
            for server in SERVERS:
                start = _start(model, server, tools, wrk, args)
                rounds.setdefault((model.key, server), []).append(start)
                _log(f"round {number}, {model.key}, {server}: cold start "
                     f"{start.cold_start_s:.2f} s, peak RSS {start.peak_rss_mib:.0f} MiB")
    section = render_section(rounds, models, facts, args)
    replace_section("serving-startup", section)
    _log(f"wrote the serving-startup section of {DOC}")
    print(section, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
