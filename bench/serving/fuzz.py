"""Fuzzing the model server: `python -m bench.serving.fuzz`.

Runs the CI fuzz test (`tests/serving_unit/test_serving_fuzz.py`: schemathesis against the
real server's `/openapi.json`, a fixed seed and budget) and writes what it tried into the
`serving-fuzz` section of docs/benchmarks.md: requests sent, the answers' status codes, and
the wall time of the test on this machine.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.sections import DOC, replace_section
from bench.serving.report import machine_facts

REPO = Path(__file__).resolve().parents[2]
TEST = "tests/serving_unit/test_serving_fuzz.py"
SUMMARY_PREFIX = "fuzz-summary: "


def run_fuzz_test() -> tuple[dict[str, Any], float]:
    """The test's summary line, and its wall time in seconds; raises if it failed."""
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", TEST],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        check=False,
    )
    elapsed = time.monotonic() - started
    if completed.returncode != 0:
        raise SystemExit(f"the fuzz test failed:\n{completed.stdout[-3000:]}{completed.stderr}")
    line = next(line for line in completed.stdout.splitlines() if line.startswith(SUMMARY_PREFIX))
    summary: dict[str, Any] = json.loads(line[len(SUMMARY_PREFIX) :])
    return summary, elapsed


def render_section(summary: dict[str, Any], elapsed: float, facts: list[tuple[str, str]]) -> str:
    statuses = ", ".join(f"{code}: {count:,}" for code, count in summary["statuses"].items())
    server_errors = sum(n for code, n in summary["statuses"].items() if int(code) >= 500)
    operations = "\n".join(
        f"| {label} | {count:,} |" for label, count in summary["operations"].items() if count
    )
    return "\n".join(
        [
            "## Serving: fuzzing the three protocols (schemathesis)",
            "",
            f"Run of {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `python -m bench.serving.fuzz`, "
            f"which runs `{TEST}` (also part of the unit tests in CI).",
            "",
            *(f"- {name}: {value}" for name, value in facts),
            "",
            "Method: `python -m mlcycle_serving` as a subprocess (uvicorn, one worker) over the "
            "trainer's own pipeline fitted on data with text columns and missing values; "
            "schemathesis reads the server's `GET /openapi.json` and, for every operation, "
            "sends requests that fit it (positive) and requests that break it (negative), with "
            "a fixed seed, a fixed number of examples per operation and arrays capped at 6 items. "
            "Check: no answer is a 5xx, the process stays up, and it logs no failed request.",
            "",
            f"**{summary['requests']:,} requests tried; {server_errors} answers with a 5xx; "
            f"0 crashes.** Status codes: {statuses}. Wall time of the test: {elapsed:.0f} s "
            "(server start included).",
            "",
            "| operation (generation mode) | requests |",
            "|---|--:|",
            operations,
            "",
        ]
    )


def main() -> int:
    facts = machine_facts()
    summary, elapsed = run_fuzz_test()
    section = render_section(summary, elapsed, facts)
    replace_section("serving-fuzz", section)
    print(section, flush=True)
    print(f"bench-serving-fuzz: wrote the serving-fuzz section of {DOC}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
