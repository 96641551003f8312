"""How long a newcomer waits: `make test` on a fresh clone, as CI runs it, timed in two
parts (the `make build` it starts with, then the rest), warm or (with --cold) from empty
Go, uv and pip caches as on a new machine.

Run: `.venv/bin/python -m bench.ci.run [--cold]`. The clone starts its own local cluster,
so stop yours first (`make down`). Results replace the `ci` section of docs/benchmarks.md;
the README quotes them.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.sections import machine, replace_section
from localkube import cluster

REPO = Path(__file__).resolve().parents[2]
SUMMARY = re.compile(r"^=+ (.*\d+ passed.*) in [\d.]+s.*=+$", re.MULTILINE)


def fresh_clone(scratch: Path) -> Path:
    clone = scratch / "mlcycle"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    return clone


def cold_environment(scratch: Path) -> dict[str, str]:
    """Empty caches for everything the Makefile downloads or builds."""
    caches = scratch / "cache"
    return {"XDG_CACHE_HOME": str(caches), "GOMODCACHE": str(caches / "gomod"),
            "UV_CACHE_DIR": str(caches / "uv"), "PIP_CACHE_DIR": str(caches / "pip")}


def timed(command: list[str], cwd: Path, env: dict[str, str], log: Path) -> float:
    started = time.monotonic()
    with log.open("a") as out:
        result = subprocess.run(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed (exit {result.returncode}); see {log}")
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cold", action="store_true", help="start from empty caches")
    args = parser.parse_args()
    if cluster.is_running(cluster.load_state()):
        sys.exit("a local cluster is running: stop it with `make down` first")

    with tempfile.TemporaryDirectory(prefix="mlcycle-ci-") as scratch_dir:
        scratch = Path(scratch_dir)
        clone = fresh_clone(scratch)
        env = {**os.environ, "CI": "true", **(cold_environment(scratch) if args.cold else {})}
        log = REPO / ".local" / "logs" / "bench-ci.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("")
        build_seconds = timed(["make", "build"], clone, env, log)
        test_seconds = timed(["bash", ".ci/run"], clone, env, log)
    found = SUMMARY.findall(log.read_text())
    summary = found[-1] if found else "no pytest summary found"
    kind = "cold (empty Go, uv and pip caches)" if args.cold else "warm (cached binaries)"
    lines = [
        f"### `make test` on a fresh clone, {kind}",
        "",
        f"Machine: {machine()}.",
        "",
        "| part | minutes |",
        "| --- | --- |",
        f"| `make build` (venv and pinned binaries) | {build_seconds / 60:.1f} |",
        f"| `.ci/run` (= `make test`: lint, unit, end-to-end) | {test_seconds / 60:.1f} |",
        f"| in all | {(build_seconds + test_seconds) / 60:.1f} |",
        "",
        f"pytest: {summary}.",
    ]
    replace_section("ci-cold" if args.cold else "ci-warm", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
