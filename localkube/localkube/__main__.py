"""`python -m localkube up|down|status|build|env`: the local cluster from the command line."""

from __future__ import annotations

import argparse
import sys

from localkube import build, cluster, images, stack
from localkube.paths import local_paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localkube", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser(
        "up", help="start the cluster, MinIO, MLflow and the operator (reusing what runs)")
    up.add_argument("--cluster-only", action="store_true", help="start the cluster alone")
    up.add_argument("--nodes", type=int, default=None,
                    help="real nodes, each its own containerd and kubelet (default: "
                         "$LOCALKUBE_NODES, else as many as run, else 1)")
    commands.add_parser("down", help="stop everything `up` started")
    commands.add_parser("status", help="exit 0 when the cluster is running")
    commands.add_parser("build", help="build (or find cached) every pinned binary")
    commands.add_parser("env", help="print shell exports for kubectl")
    commands.add_parser("images", help="build (or find cached) the images, with buildah")
    args = parser.parse_args(argv)

    if args.command == "up":
        if args.cluster_only:
            state = cluster.up(nodes=args.nodes)
        else:
            whole = stack.up(nodes=args.nodes)
            state = whole.cluster
            print(f"\nMLflow UI: {whole.services.mlflow_url}   S3: {whole.services.s3_endpoint}")
        print(
            "\nThe local cluster is running. Use it with:\n"
            f"  export KUBECONFIG={state.kubeconfig}\n"
            f"  export PATH={local_paths().bin}:$PATH\n"
            "  kubectl get nodes\n"
            f"Logs: {local_paths().logs}/   Stop: make down"
        )
    elif args.command == "down":
        stack.down()
    elif args.command == "status":
        recorded = cluster.load_state()
        up_now = cluster.is_running(recorded)
        print(f"running at {recorded.server}" if up_now and recorded else "not running")
        return 0 if up_now else 1
    elif args.command == "build":
        for name, path in build.ensure_binaries(list(build.BINARY_FAMILY)).items():
            print(f"{name}: {path}")
    elif args.command == "images":
        images.main()
    elif args.command == "env":
        paths = local_paths()
        print(f"export KUBECONFIG={paths.kubeconfig}\nexport PATH={paths.bin}:$PATH")
    return 0


if __name__ == "__main__":
    sys.exit(main())
