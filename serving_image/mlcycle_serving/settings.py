"""Server settings, parsed once from the environment named in `contract`."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from mlcycle_serving import contract
from mlcycle_serving.contract import EnvVar


class SettingsError(ValueError):
    """An environment variable has a value the server cannot use."""


@dataclass(frozen=True)
class ServerSettings:
    """Everything the server reads from its environment, validated."""

    model_uri: str
    model_name: str = ""
    host: str = contract.HOST.default
    port: int = int(contract.PORT.default)
    max_batch_size: int = int(contract.MAX_BATCH_SIZE.default)
    max_batch_wait_ms: float = float(contract.MAX_BATCH_WAIT_MS.default)
    max_body_bytes: int = int(contract.MAX_BODY_BYTES.default)
    model_download_dir: str = ""
    shutdown_delay_seconds: float = float(contract.SHUTDOWN_DELAY_SECONDS.default)
    log_level: str = contract.LOG_LEVEL.default
    access_log: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServerSettings:
        env = os.environ if environ is None else environ

        def text(var: EnvVar) -> str:
            return env.get(var.name, var.default).strip() or var.default

        model_uri = text(contract.MODEL_URI)
        if not model_uri:
            raise SettingsError(f"{contract.MODEL_URI.name} is required")
        log_level = text(contract.LOG_LEVEL).upper()
        if log_level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise SettingsError(f"{contract.LOG_LEVEL.name}={log_level!r} is not a log level")
        return cls(
            model_uri=model_uri,
            model_name=text(contract.MODEL_NAME),
            host=text(contract.HOST),
            port=_integer(contract.PORT, text(contract.PORT), minimum=1, maximum=65535),
            max_batch_size=_integer(
                contract.MAX_BATCH_SIZE, text(contract.MAX_BATCH_SIZE), minimum=1
            ),
            max_batch_wait_ms=_number(contract.MAX_BATCH_WAIT_MS, text(contract.MAX_BATCH_WAIT_MS)),
            max_body_bytes=_integer(
                contract.MAX_BODY_BYTES, text(contract.MAX_BODY_BYTES), minimum=1
            ),
            model_download_dir=text(contract.MODEL_DOWNLOAD_DIR),
            shutdown_delay_seconds=_number(
                contract.SHUTDOWN_DELAY_SECONDS, text(contract.SHUTDOWN_DELAY_SECONDS)),
            log_level=log_level,
            access_log=_boolean(contract.ACCESS_LOG, text(contract.ACCESS_LOG)),
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
