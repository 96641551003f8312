"""How long a newcomer waits: `make test` on a fresh clone, as CI runs it, timed in parts
(`make build`: the venv and the pinned binaries; `make images`; then the rest), warm or
(with --cold) from empty Go, uv, pip and image caches as on a new machine; with --demo,
`make demo` instead of `make test`, in one piece as the newcomer runs it (the clone's
cluster is stopped after it).

Run: `.venv/bin/python -m bench.ci.run [--cold] [--build-only | --demo]`. Without
--build-only the clone starts its own local cluster, so stop yours first (`make down`).
Results replace the `ci-*` (or `demo-*`) sections of docs/benchmarks.md; the README quotes
them.
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
    parser.add_argument("--build-only", action="store_true",
                        help="time the builds alone (needs no cluster, runs no test)")
    parser.add_argument("--demo", action="store_true",
                        help="time `make demo` instead (its builds included, not apart)")
    parser.add_argument("--note", default="", help="a sentence on the conditions, recorded")
    args = parser.parse_args()
    if args.demo and args.build_only:
        sys.exit("--demo times the builds within `make demo`: drop --build-only")
    if not args.build_only and cluster.is_running(cluster.load_state()):
        sys.exit("a local cluster is running: stop it with `make down` first")

    with tempfile.TemporaryDirectory(prefix="mlcycle-ci-") as scratch_dir:
        scratch = Path(scratch_dir)
        clone = fresh_clone(scratch)
        env = {**os.environ, "CI": "true", **(cold_environment(scratch) if args.cold else {})}
        log = REPO / ".local" / "bench" / "ci.log"  # not logs/: a cluster start empties that
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("")
        if args.demo:
            try:
                parts = {"`make demo` (builds, images, cluster, chart, examples, predictions)":
                         timed(["make", "demo"], clone, env, log)}
            finally:
                subprocess.run(["make", "down"], cwd=clone, env=env, capture_output=True)
        else:
            parts = {
                "`make build` (venv and pinned binaries)":
                    timed(["make", "build"], clone, env, log),
                "`make images` (base, trainer, serving, operator, pause, CoreDNS)":
                    timed(["make", "images"], clone, env, log),
            }
            if not args.build_only:
                parts["`.ci/run` (= `make test`: the rest, lint, unit, end-to-end)"] = timed(
                    ["bash", ".ci/run"], clone, env, log)
    kind = "cold (empty Go, uv, pip and image caches)" if args.cold else "warm (cached builds)"
    what = ("`make demo`" if args.demo else
            "the builds of `make test`" if args.build_only else "`make test`")
    lines = [
        f"### {what} on a fresh clone, {kind}",
        "",
        f"Machine: {machine()}. {args.note}".rstrip(),
        "",
        "| part | minutes |",
        "| --- | --- |",
        *(f"| {part} | {seconds / 60:.1f} |" for part, seconds in parts.items()),
        f"| in all | {sum(parts.values()) / 60:.1f} |",
    ]
    if not (args.build_only or args.demo):
        found = SUMMARY.findall(log.read_text())
        lines += ["", f"pytest: {found[-1] if found else 'no pytest summary found'}."]
    section = (("demo-" if args.demo else "ci-") + ("cold" if args.cold else "warm")
               + ("-build" if args.build_only else ""))
    replace_section(section, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
