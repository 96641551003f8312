"""`python -m mlcycle_serving`: serve the model named by MLCYCLE_MODEL_URI.

Settings come from the environment (`mlcycle_contract.environment`); the few flags
override it for local use. With one worker (the default) the HTTP server starts first and
the model loads in the background, so liveness answers while a large model downloads;
with MLCYCLE_WORKERS > 1 a supervisor runs that many worker processes on the port
(`supervisor`). If loading fails the process exits with status 1 and Kubernetes restarts
it with back-off.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import logging
import logging.config
import os
import sys

from prometheus_client import disable_created_metrics

from mlcycle_contract import environment
from mlcycle_serving.logs import uvicorn_log_config
from mlcycle_serving.model import model_name_from_uri
from mlcycle_serving.server import Launch, serve
from mlcycle_serving.settings import ServerSettings, SettingsError
from mlcycle_serving.supervisor import supervise

logger = logging.getLogger("mlcycle_serving")


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m mlcycle_serving", description=__doc__)
    parser.add_argument("--model-uri", help="overrides MLCYCLE_MODEL_URI")
    parser.add_argument("--model-name", help="overrides MLCYCLE_MODEL_NAME")
    parser.add_argument("--host", help="overrides HOST")
    parser.add_argument("--port", type=int, help="overrides PORT")
    parser.add_argument("--workers", type=int, help="overrides MLCYCLE_WORKERS")
    parser.add_argument(
        "--http",
        choices=("httptools", "h11"),
        help="HTTP parser (default: httptools when installed, else the pure-Python h11)",
    )
    parser.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        help="event loop (default: uvloop when installed, else asyncio's own)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    overrides = {
        environment.MODEL_URI.name: args.model_uri,
        environment.MODEL_NAME.name: args.model_name,
        environment.HOST.name: args.host,
        environment.PORT.name: None if args.port is None else str(args.port),
        environment.WORKERS.name: None if args.workers is None else str(args.workers),
    }
    environ = {**os.environ, **{k: v for k, v in overrides.items() if v is not None}}
    try:
        settings = ServerSettings.from_env(environ)
    except SettingsError as exc:
        logging.config.dictConfig(uvicorn_log_config("INFO"))
        logger.error("Invalid settings: %s", exc)
        return 2
    logging.config.dictConfig(uvicorn_log_config(settings.log_level))
    disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series

    launch = Launch(
        settings,
        http=args.http or ("httptools" if _installed("httptools") else "h11"),
        loop=args.loop or ("uvloop" if _installed("uvloop") else "asyncio"),
    )
    logger.info(
        "Starting model server",
        extra={
            "model": settings.model_name or model_name_from_uri(settings.model_uri),
            "uri": settings.model_uri,
            "address": f"{settings.host}:{settings.port}",
            "http": launch.http,
            "loop": launch.loop,
            "settings": {k: v for k, v in dataclasses.asdict(settings).items() if k != "model_uri"},
        },
    )
    return serve(launch) if settings.workers == 1 else supervise(launch)


if __name__ == "__main__":
    sys.exit(main())
