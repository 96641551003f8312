"""`python -m mlcycle_serving`: serve the model named by MLCYCLE_MODEL_URI.

Settings come from the environment (`mlcycle_contract.environment`); the few flags
override it for local use. The HTTP server starts first and the model loads in the
background, so liveness answers while a large model downloads. If loading fails the process exits
with status 1 and Kubernetes restarts it with back-off.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import logging
import logging.config
import os
import sys
import threading
from types import FrameType

import uvicorn
from prometheus_client import disable_created_metrics

from mlcycle_contract import environment
from mlcycle_serving.app import ServingApp, create_app
from mlcycle_serving.logs import uvicorn_log_config
from mlcycle_serving.model import Model
from mlcycle_serving.settings import ServerSettings, SettingsError

logger = logging.getLogger("mlcycle_serving")


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m mlcycle_serving", description=__doc__)
    parser.add_argument("--model-uri", help="overrides MLCYCLE_MODEL_URI")
    parser.add_argument("--model-name", help="overrides MLCYCLE_MODEL_NAME")
    parser.add_argument("--host", help="overrides HOST")
    parser.add_argument("--port", type=int, help="overrides PORT")
    return parser.parse_args(argv)


class DrainingServer(uvicorn.Server):
    """On the first SIGTERM, report not-ready and keep serving for the shutdown delay, so
    clients and endpoint lists move away before the listener closes; then shut down
    gracefully, finishing in-flight requests. A second signal stops at once."""

    def __init__(self, config: uvicorn.Config, app: ServingApp, delay_seconds: float) -> None:
        super().__init__(config)
        self.app = app
        self.delay_seconds = delay_seconds

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.app.draining or self.delay_seconds <= 0:
            super().handle_exit(sig, frame)
            return
        self.app.draining = True
        logger.info("Draining before shutdown", extra={"delay_seconds": self.delay_seconds})
        timer = threading.Timer(self.delay_seconds, super().handle_exit, (sig, frame))
        timer.daemon = True
        timer.start()


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    overrides = {
        environment.MODEL_URI.name: args.model_uri,
        environment.MODEL_NAME.name: args.model_name,
        environment.HOST.name: args.host,
        environment.PORT.name: None if args.port is None else str(args.port),
    }
    environ = {**os.environ, **{k: v for k, v in overrides.items() if v is not None}}
    try:
        settings = ServerSettings.from_env(environ)
    except SettingsError as exc:
        logging.config.dictConfig(uvicorn_log_config("INFO"))
        logger.error("Invalid settings: %s", exc)
        return 2
    log_config = uvicorn_log_config(settings.log_level)
    logging.config.dictConfig(log_config)

    disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series
    model = Model(settings.model_uri, settings.model_name, settings.model_download_dir)
    failed = False
    server: uvicorn.Server | None = None

    def on_load_error(_exc: BaseException) -> None:
        nonlocal failed
        failed = True
        if server is not None:
            server.should_exit = True

    app = create_app(model, settings, on_load_error)
    http = "httptools" if _installed("httptools") else "h11"
    loop = "uvloop" if _installed("uvloop") else "asyncio"
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        workers=1,
        http=http,
        loop=loop,
        lifespan="on",
        log_config=log_config,
        access_log=False,
        server_header=False,
    )
    server = DrainingServer(config, app, settings.shutdown_delay_seconds)
    logger.info(
        "Starting model server",
        extra={
            "model": model.name,
            "uri": settings.model_uri,
            "address": f"{settings.host}:{settings.port}",
            "http": http,
            "loop": loop,
            "settings": {k: v for k, v in dataclasses.asdict(settings).items() if k != "model_uri"},
        },
    )
    server.run()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
