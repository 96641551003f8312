"""The `serving` section of docs/benchmarks.md (written through `bench.sections`): machine
and versions, method, targets, and one table per model, request size and concurrency.
Rendering is pure."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from pathlib import Path

from bench.serving.results import SCENARIOS, Runs, Target, ratio, targets

SERVER_TITLES = {
    "ours": "mlcycle_serving (ours)",
    "mlflow": "`mlflow models serve`",
    "kserve": "KServe ModelServer",
}
MIB = 1024 * 1024


@dataclass(frozen=True)
class Setup:
    """Where and with what the run happened."""

    date: str
    facts: list[tuple[str, str]]
    method: list[str]
    model_titles: dict[str, str]
    protocols: dict[str, str]


def machine_facts() -> list[tuple[str, str]]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory = "unknown"
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
            break
    load = " / ".join(f"{value:.2f}" for value in os.getloadavg())
    return [
        ("CPUs (nproc)", str(len(os.sched_getaffinity(0)))),
        ("CPU model", cpu),
        ("Memory", memory),
        ("Kernel", platform.release()),
        ("Load average at start (1/5/15 min)", load),
    ]


def _ratio_cell(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}x"


def _scenario_table(runs: Runs, model: str, servers: tuple[str, ...], index: int) -> list[str]:
    scenario = SCENARIOS[index]
    lines = [
        f"##### {scenario.title}",
        "",
        "| server | req/s | p50 ms | p99 ms | errors | peak RSS MiB | cold start s "
        "| ours ÷ it: req/s | ours ÷ it: p50 | ours ÷ it: p99 |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for server in servers:
        run = runs.get((model, server))
        measured = None if run is None else run.measurements.get(scenario)
        if run is None or measured is None:
            continue
        load = measured.load
        cells = [
            SERVER_TITLES[server],
            f"{load.rps:,.0f}",
            f"{load.p50_ms:.2f}",
            f"{load.p99_ms:.2f}",
            str(load.errors),
            f"{measured.peak_rss_bytes / MIB:.0f}",
            f"{run.cold_start_s:.2f}",
        ]
        if server == "ours":
            cells += ["", "", ""]
        else:
            cells += [
                _ratio_cell(ratio(runs, model, server, scenario, metric))
                for metric in ("rps", "p50", "p99")
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def _targets_table(found: list[Target]) -> list[str]:
    lines = ["| target | measured (ours ÷ peer) | met |", "|---|--:|:-:|"]
    for target in found:
        met = "yes" if target.met else "**no**"
        lines.append(f"| {target.description} | {target.measured:.2f}x | {met} |")
    return [*lines, ""]


def render_section(runs: Runs, setup: Setup, servers: tuple[str, ...]) -> str:
    found = targets(runs)
    missed = [t for t in found if not t.met]
    verdict = (
        f"All {len(found)} targets met in this run."
        if not missed
        else f"{len(missed)} of {len(found)} targets missed in this run: "
        + "; ".join(f"{t.description} ({t.measured:.2f}x)" for t in missed)
        + "."
    )
    lines = [
        "## Serving: mlcycle_serving, MLflow and KServe side by side",
        "",
        f"Run of {setup.date}, with `make bench-serving` (driver: `bench/serving/`).",
        "",
        "### Machine and versions",
        "",
        *(f"- {name}: {value}" for name, value in setup.facts),
        "",
        "### Method",
        "",
        *(f"- {item}" for item in setup.method),
        "",
        "Protocols:",
        "",
        *(f"- {SERVER_TITLES[key]}: {setup.protocols[key]}" for key in servers),
        "",
        "### Targets (the issue's, as ratios within this run)",
        "",
        verdict,
        "",
        *_targets_table(found),
        "### Results",
        "",
        "Ratios are ours divided by that server's: above 1 for req/s and below 1 for "
        "latency favour us. Peak RSS is the server's whole process tree during that "
        "scenario; cold start is per server start (the same in a model's four tables).",
        "",
    ]
    for model, title in setup.model_titles.items():
        lines += [f"#### {title}", ""]
        for index in range(len(SCENARIOS)):
            lines += _scenario_table(runs, model, servers, index)
    return "\n".join(lines) + "\n"
