"""Server settings, parsed once from the variables `mlcycle_contract.environment` names."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from mlcycle_contract import environment
from mlcycle_contract.environment import EnvVar


class SettingsError(ValueError):
    """An environment variable has a value the server cannot use."""


@dataclass(frozen=True)
class ServerSettings:
    """Everything the server reads from its environment, validated."""

    model_uri: str
    model_name: str = ""
    host: str = environment.HOST.default
    port: int = int(environment.PORT.default)
    max_batch_size: int = int(environment.MAX_BATCH_SIZE.default)
    max_batch_wait_ms: float = float(environment.MAX_BATCH_WAIT_MS.default)
    max_body_bytes: int = int(environment.MAX_BODY_BYTES.default)
    model_download_dir: str = ""
    shutdown_delay_seconds: float = float(environment.SHUTDOWN_DELAY_SECONDS.default)
    log_level: str = environment.LOG_LEVEL.default
    access_log: bool = False
    workers: int = int(environment.WORKERS.default)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServerSettings:
        env = os.environ if environ is None else environ

        def text(var: EnvVar) -> str:
            return env.get(var.name, var.default).strip() or var.default

        model_uri = text(environment.MODEL_URI)
        if not model_uri:
            raise SettingsError(f"{environment.MODEL_URI.name} is required")
        log_level = text(environment.LOG_LEVEL).upper()
        if log_level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise SettingsError(f"{environment.LOG_LEVEL.name}={log_level!r} is not a log level")
        return cls(
            model_uri=model_uri,
            model_name=text(environment.MODEL_NAME),
            host=text(environment.HOST),
            port=_integer(environment.PORT, text(environment.PORT), minimum=1, maximum=65535),
            max_batch_size=_integer(
                environment.MAX_BATCH_SIZE, text(environment.MAX_BATCH_SIZE), minimum=1
            ),
            max_batch_wait_ms=_number(
                environment.MAX_BATCH_WAIT_MS, text(environment.MAX_BATCH_WAIT_MS)
            ),
            max_body_bytes=_integer(
                environment.MAX_BODY_BYTES, text(environment.MAX_BODY_BYTES), minimum=1
            ),
            model_download_dir=text(environment.MODEL_DOWNLOAD_DIR),
            shutdown_delay_seconds=_number(
                environment.SHUTDOWN_DELAY_SECONDS, text(environment.SHUTDOWN_DELAY_SECONDS)),
            log_level=log_level,
            access_log=_boolean(environment.ACCESS_LOG, text(environment.ACCESS_LOG)),
            workers=_integer(environment.WORKERS, text(environment.WORKERS), minimum=1, maximum=16),
        )


def _integer(var: EnvVar, raw: str, minimum: int, maximum: int | None = None) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{var.name}={raw!r} is not an integer") from None
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise SettingsError(f"{var.name}={value} must be {bounds}")
    return value


def _number(var: EnvVar, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{var.name}={raw!r} is not a number") from None
    if not 0 <= value <= 10_000:
        raise SettingsError(f"{var.name}={value} must be in [0, 10000]")
    return value


def _boolean(var: EnvVar, raw: str) -> bool:
    lowered = raw.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{var.name}={raw!r} is not a boolean (true/false)")
