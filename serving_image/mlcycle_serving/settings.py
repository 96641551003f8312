"""Server settings, parsed once from the variables `mlcycle_contract.environment` names."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from mlcycle_contract import drift, environment
from mlcycle_contract.environment import EnvVar
from mlcycle_serving.drift import SLOTS, DriftSettings


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
    drift: DriftSettings = field(default_factory=DriftSettings)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServerSettings:
        env = _Environment(os.environ if environ is None else environ)
        model_uri = env.text(environment.MODEL_URI)
        if not model_uri:
            raise SettingsError(f"{environment.MODEL_URI.name} is required")
        log_level = env.text(environment.LOG_LEVEL).upper()
        if log_level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise SettingsError(f"{environment.LOG_LEVEL.name}={log_level!r} is not a log level")
        return cls(
            model_uri=model_uri,
            model_name=env.text(environment.MODEL_NAME),
            host=env.text(environment.HOST),
            port=env.integer(environment.PORT, minimum=1, maximum=65535),
            max_batch_size=env.integer(environment.MAX_BATCH_SIZE, minimum=1),
            max_batch_wait_ms=env.number(environment.MAX_BATCH_WAIT_MS),
            max_body_bytes=env.integer(environment.MAX_BODY_BYTES, minimum=1),
            model_download_dir=env.text(environment.MODEL_DOWNLOAD_DIR),
            shutdown_delay_seconds=env.number(environment.SHUTDOWN_DELAY_SECONDS),
            log_level=log_level,
            access_log=env.boolean(environment.ACCESS_LOG),
            workers=env.integer(environment.WORKERS, minimum=1, maximum=16),
            drift=DriftSettings(
                enabled=env.boolean(drift.DRIFT),
                window_rows=env.integer(drift.DRIFT_WINDOW_ROWS, minimum=SLOTS),
                window_seconds=max(env.number(drift.DRIFT_WINDOW_SECONDS), 1.0),
                psi=env.positive(drift.DRIFT_PSI, maximum=10_000),
                jensen_shannon=env.positive(drift.DRIFT_JENSEN_SHANNON, maximum=1),
                missing_shift=env.positive(drift.DRIFT_MISSING_SHIFT, maximum=1),
                unseen_share=env.positive(drift.DRIFT_UNSEEN_SHARE, maximum=1),
                min_rows=env.integer(drift.DRIFT_MIN_ROWS, minimum=1),
            ),
        )


@dataclass(frozen=True)
class _Environment:
    """Reads one variable as the type a setting needs; an unusable value names the variable."""

    env: Mapping[str, str]

    def text(self, var: EnvVar) -> str:
        return self.env.get(var.name, var.default).strip() or var.default

    def integer(self, var: EnvVar, minimum: int, maximum: int | None = None) -> int:
        raw = self.text(var)
        try:
            value = int(raw)
        except ValueError:
            raise SettingsError(f"{var.name}={raw!r} is not an integer") from None
        if value < minimum or (maximum is not None and value > maximum):
            bounds = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
            raise SettingsError(f"{var.name}={value} must be {bounds}")
        return value

    def number(self, var: EnvVar) -> float:
        raw = self.text(var)
        try:
            value = float(raw)
        except ValueError:
            raise SettingsError(f"{var.name}={raw!r} is not a number") from None
        if not 0 <= value <= 10_000:
            raise SettingsError(f"{var.name}={value} must be in [0, 10000]")
        return value

    def positive(self, var: EnvVar, maximum: float) -> float:
        """A number in (0, maximum]: a threshold, which at 0 would flag everything."""
        value = self.number(var)
        if not 0 < value <= maximum:
            raise SettingsError(f"{var.name}={value} must be in (0, {maximum:g}]")
        return value

    def boolean(self, var: EnvVar) -> bool:
        raw = self.text(var)
        lowered = raw.lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise SettingsError(f"{var.name}={raw!r} is not a boolean (true/false)")
