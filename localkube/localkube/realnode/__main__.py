"""`python -m localkube.realnode up|down`: the real nodes alone, next to a running cluster
(for development; `make up` starts them with the rest). Their pids join `.local/cluster.json`.
`down --node N` stops node N alone, as a failing machine would; `add` starts one more node
next to the running ones and `remove` stops the last one and deletes its Node."""

from __future__ import annotations

import argparse
import sys

from localkube import cluster
from localkube.paths import local_paths
from localkube.realnode import node


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localkube.realnode", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "add", "remove"])
    parser.add_argument("--node", type=int, help="down: this node only (1 is `realnode`)")
    args = parser.parse_args(argv)
    paths = local_paths()
    state = cluster.load_state(paths)
    if args.command == "down" and args.node is not None:
        if state is None:
            print("The cluster is not running: make up", file=sys.stderr)
            return 1
        node.stop_node(state, paths, args.node)
        return 0
    if args.command == "down":
        node.stop(state, paths)
        return 0
    if state is None or not cluster.is_running(state, paths):
        print("The cluster is not running: make up", file=sys.stderr)
        return 1
    if args.command == "add":
        node.add_node(state, paths)
    elif args.command == "remove":
        node.remove_node(state, paths)
    else:
        node.start(state, paths)
    return 0


if __name__ == "__main__":
    sys.exit(main())
