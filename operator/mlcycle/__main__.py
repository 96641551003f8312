"""`python -m mlcycle`: run the operator (what the operator image's entrypoint runs)."""

from __future__ import annotations

import logging

import kopf

from mlcycle import handlers


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    namespaces = handlers.SETTINGS.namespaces
    kopf.run(
        clusterwide=not namespaces,
        namespaces=namespaces,
        standalone=True,
        liveness_endpoint=f"http://0.0.0.0:{handlers.SETTINGS.health_port}/healthz",
    )


if __name__ == "__main__":
    main()
