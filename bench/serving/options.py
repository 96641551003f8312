"""Our server against itself: `python -m bench.serving.options` (part of `make bench-serving`).

Three ways to run mlcycle_serving over the same two models, at 1 row per request and
concurrency 16: the default (one worker, httptools and uvloop), two worker processes
(`MLCYCLE_WORKERS=2`, what `spec.serving.workers: 2` sets), and one worker on uvicorn's
pure-Python stack (`--http h11 --loop asyncio`). Rounds are interleaved (every variant
once, then again); each figure is the median over the rounds, and a variant's ratio to
the default is the median of its per-round ratios, each between consecutive runs, so a
burst of load from elsewhere on the machine skews one round rather than one variant.
Writes the `serving-options` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from bench.sections import DOC, replace_section
from bench.serving.load import LoadResult, ensure_wrk, run_wrk, write_script, wrk_version
from bench.serving.models import BenchModel, prepare_models
from bench.serving.report import machine_facts
from bench.serving.results import HEADLINE
from bench.serving.servers import Tools, build_spec, free_port, running

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Variant:
    key: str
    title: str
    flags: tuple[str, ...]


BASELINE = Variant("default", "1 worker, httptools + uvloop (the default)", ())
VARIANTS = (
    BASELINE,
    Variant("workers2", "2 workers (`MLCYCLE_WORKERS=2`), httptools + uvloop", ("--workers", "2")),
    Variant("h11", "1 worker, h11 + asyncio (pure Python)", ("--http", "h11", "--loop", "asyncio")),
)

Rounds = dict[tuple[str, str], list[LoadResult]]
"""(model, variant) -> one load result per round."""


def _log(message: str) -> None:
    print(f"bench-serving-options: {message}", flush=True)


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.serving.options", description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (median)")
    parser.add_argument("--duration", type=int, default=5, help="seconds timed per run")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of warm-up per run")
    parser.add_argument("--work-dir", type=Path, default=REPO / ".local" / "bench")
    args = parser.parse_args(argv)
    if not 1 <= args.rounds <= 9 or not 1 <= args.duration <= 120 or not 0 <= args.warmup <= 60:
        parser.error("--rounds in [1, 9], --duration in [1, 120], --warmup in [0, 60]")
    return args


def _measure(
    model: BenchModel, variant: Variant, tools: Tools, wrk: str, args: argparse.Namespace
) -> LoadResult:
    port = free_port()
    spec = build_spec("ours", model, port, tools)
    spec = replace(spec, argv=[*spec.argv, *variant.flags])
    work = args.work_dir / "serving-options"
    payload = model.payloads[HEADLINE.rows]
    with running(spec, port, payload, work / "logs" / model.key / variant.key) as server:
        server.check(payload)
        script = write_script(spec.body(payload), work / "requests", f"{model.key}-{variant.key}")
        if args.warmup:
            run_wrk(wrk, server.url, script, HEADLINE.connections, args.warmup)
        return run_wrk(wrk, server.url, script, HEADLINE.connections, args.duration)


def _median(results: list[LoadResult], metric: str) -> float:
    return float(statistics.median(getattr(result, metric) for result in results))


def _paired_ratio(results: list[LoadResult], baseline: list[LoadResult]) -> float:
    """Median over rounds of this variant's req/s over the default's in the same round."""
    return float(
        statistics.median(
            mine.rps / theirs.rps for mine, theirs in zip(results, baseline, strict=True)
        )
    )


def render_section(
    rounds: Rounds, models: list[BenchModel], facts: list[tuple[str, str]], args: argparse.Namespace
) -> str:
    lines = [
        "## Serving: our server's options (workers, HTTP stack)",
        "",
        f"Run of {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `python -m bench.serving.options` "
        "(part of `make bench-serving`).",
        "",
        "How busy the machine was shows in the load average below: on a shared machine "
        "absolute figures are low and noisy, and the ratios within a row's rounds are the "
        "signal. Every figure is the median of the interleaved rounds; ÷ default "
        "is the median of the per-round ratios (each variant against the default of the "
        "same round).",
        "",
        *(f"- {name}: {value}" for name, value in facts),
        "",
        f"Method: the same models and 1-row request as the section above (KServe V1, "
        f"`instances`), wrk with one thread and {HEADLINE.connections} connections, closed "
        f"loop; per run a fresh server, its predictions checked, a {args.warmup} s warm-up, "
        f"then {args.duration} s timed; {args.rounds} rounds, each running every variant "
        "once in turn.",
        "",
    ]
    for model in models:
        baseline = rounds[(model.key, BASELINE.key)]
        lines += [
            f"#### {model.title}, {HEADLINE.title}",
            "",
            "| variant | req/s | ÷ default | p50 ms | p99 ms | errors | req/s per round |",
            "|---|--:|--:|--:|--:|--:|---|",
        ]
        for variant in VARIANTS:
            results = rounds[(model.key, variant.key)]
            cells = [
                variant.title,
                f"{_median(results, 'rps'):,.0f}",
                f"{_paired_ratio(results, baseline):.2f}x",
                f"{_median(results, 'p50_ms'):.2f}",
                f"{_median(results, 'p99_ms'):.2f}",
                str(sum(result.errors for result in results)),
                ", ".join(f"{result.rps:,.0f}" for result in results),
            ]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    args.work_dir = args.work_dir.absolute()
    facts = machine_facts()
    wrk = ensure_wrk()
    project_bin = Path(sys.executable).parent  # not resolved: keep the virtualenv's python
    tools = Tools(project_bin, project_bin / "python", Path())
    _log("training and saving the models")
    models = prepare_models(args.work_dir / "serving-options")
    rounds: Rounds = {}
    for number in range(1, args.rounds + 1):
        for model in models:
            for variant in VARIANTS:
                result = _measure(model, variant, tools, wrk, args)
                rounds.setdefault((model.key, variant.key), []).append(result)
                _log(
                    f"round {number}, {model.key}, {variant.key}: {result.rps:,.0f} req/s, "
                    f"p99 {result.p99_ms:.2f} ms, errors {result.errors}"
                )
    versions = [
        ("Python", platform.python_version()),
        *((name, metadata.version(name)) for name in ("uvicorn", "httptools", "uvloop", "h11")),
        ("wrk", wrk_version(wrk)),
    ]
    section = render_section(rounds, models, facts + versions, args)
    replace_section("serving-options", section)
    _log(f"wrote the serving-options section of {DOC}")
    print(section, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
