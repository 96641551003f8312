"""`python -m localkube up|down|status|build|env`: the local cluster from the command line."""

from __future__ import annotations

import argparse
import sys

from localkube import build, cluster
from localkube.paths import local_paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localkube", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start the cluster (reused when already running)")
    up.add_argument("--no-node-agent", action="store_true",
                    help="start the control plane only (for node agent development)")
    commands.add_parser("down", help="stop every process the cluster started")
    commands.add_parser("status", help="exit 0 when the cluster is running")
    commands.add_parser("build", help="build (or find cached) every pinned binary")
    commands.add_parser("env", help="print shell exports for kubectl")
    args = parser.parse_args(argv)

    if args.command == "up":
        state = cluster.up(node_agent=not args.no_node_agent)
        print(
            "\nThe local cluster is running. Use it with:\n"
            f"  export KUBECONFIG={state.kubeconfig}\n"
            f"  export PATH={local_paths().bin}:$PATH\n"
            "  kubectl get nodes\n"
            f"Logs: {local_paths().logs}/   Stop: make down"
        )
    elif args.command == "down":
        cluster.down()
    elif args.command == "status":
        recorded = cluster.load_state()
        running = cluster.is_running(recorded)
        print(f"running at {recorded.server}" if running and recorded else "not running")
        return 0 if running else 1
    elif args.command == "build":
        for name, path in build.ensure_binaries(list(build.BINARY_FAMILY)).items():
            print(f"{name}: {path}")
    elif args.command == "env":
        paths = local_paths()
        print(f"export KUBECONFIG={paths.kubeconfig}\nexport PATH={paths.bin}:$PATH")
    return 0


if __name__ == "__main__":
    sys.exit(main())
