"""`python -m localkube.realnode up|down`: the real node alone, next to a running cluster
(for development; `make up` starts it with the rest). Its pids join `.local/cluster.json`."""

from __future__ import annotations

import argparse
import sys

from localkube import cluster
from localkube.paths import local_paths
from localkube.realnode import node


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localkube.realnode", description=__doc__)
    parser.add_argument("command", choices=["up", "down"])
    args = parser.parse_args(argv)
    paths = local_paths()
    state = cluster.load_state(paths)
    if args.command == "down":
        node.stop(state, paths)
        return 0
    if state is None or not cluster.is_running(state, paths):
        print("The cluster is not running: make up", file=sys.stderr)
        return 1
    node.start(state, paths)
    return 0


if __name__ == "__main__":
    sys.exit(main())
