"""`python -m localkube.node --config PATH`: run the node agent (as root).

PATH is a `NodeConfig` JSON file written by the harness. SIGTERM/SIGINT stop the agent
and every container it started. `--cleanup` only removes what a crashed agent left.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from .agent import Agent
from .config import NodeConfig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localkube.node", description=__doc__)
    parser.add_argument("--config", required=True, type=Path, help="NodeConfig JSON file")
    parser.add_argument("--log-level", default=os.environ.get("LOCALKUBE_NODE_LOG_LEVEL", "INFO"))
    parser.add_argument(
        "--cleanup",
        action="store_true",
        help="only kill what a previous (crashed) agent left running and remove its netns",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname).1s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("urllib3", "kubernetes"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if os.geteuid() != 0:
        parser.error("the node agent must run as root (network namespaces, bind mounts)")
    config = NodeConfig.model_validate_json(args.config.read_text())
    config.state_dir.mkdir(parents=True, exist_ok=True)
    agent = Agent(config)
    if args.cleanup:
        agent.cleanup_leftovers()
        return 0
    return agent.run()


if __name__ == "__main__":
    sys.exit(main())
