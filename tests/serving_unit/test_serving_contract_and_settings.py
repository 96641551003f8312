"""The settings parsed from the environment contract, and the image's import rules."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from starlette.testclient import TestClient

import mlcycle_serving
from mlcycle_contract import environment
from mlcycle_serving.settings import ServerSettings, SettingsError

PACKAGE_DIR = Path(mlcycle_serving.__file__).parent


def test_probe_paths_answer(client: TestClient) -> None:
    assert client.get(environment.LIVENESS_PATH).status_code == 200
    assert client.get(environment.READINESS_PATH).status_code == 200
    assert client.get(environment.METRICS_PATH).status_code == 200


def test_settings_defaults_are_the_contract_defaults() -> None:
    settings = ServerSettings.from_env({"MLCYCLE_MODEL_URI": "models:/iris@champion"})
    assert settings == ServerSettings(model_uri="models:/iris@champion")
    assert str(settings.port) == environment.PORT.default
    assert settings.host == environment.HOST.default
    assert str(settings.max_batch_size) == environment.MAX_BATCH_SIZE.default
    assert settings.max_batch_wait_ms == float(environment.MAX_BATCH_WAIT_MS.default)
    assert str(settings.max_body_bytes) == environment.MAX_BODY_BYTES.default
    assert settings.access_log is False
    assert str(settings.workers) == environment.WORKERS.default


def test_settings_read_every_server_variable() -> None:
    environ = {
        "MLCYCLE_MODEL_URI": "models:/iris/3",
        "MLCYCLE_MODEL_NAME": "flowers",
        "HOST": "127.0.0.1",
        "PORT": "9000",
        "MLCYCLE_MAX_BATCH_SIZE": "8",
        "MLCYCLE_MAX_BATCH_WAIT_MS": "0.5",
        "MLCYCLE_MAX_BODY_BYTES": "1024",
        "MLCYCLE_MODEL_DOWNLOAD_DIR": "/models",
        "MLCYCLE_SHUTDOWN_DELAY_SECONDS": "0",
        "MLCYCLE_LOG_LEVEL": "debug",
        "MLCYCLE_ACCESS_LOG": "true",
        "MLCYCLE_WORKERS": "2",
    }
    assert set(environ) == {var.name for var in environment.SERVER_SETTINGS}
    assert ServerSettings.from_env(environ) == ServerSettings(
        model_uri="models:/iris/3",
        model_name="flowers",
        host="127.0.0.1",
        port=9000,
        max_batch_size=8,
        max_batch_wait_ms=0.5,
        max_body_bytes=1024,
        model_download_dir="/models",
        shutdown_delay_seconds=0,
        log_level="DEBUG",
        access_log=True,
        workers=2,
    )


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "MLCYCLE_MODEL_URI is required"),
        ({"PORT": "http"}, "PORT='http' is not an integer"),
        ({"PORT": "70000"}, "PORT=70000 must be in [1, 65535]"),
        ({"MLCYCLE_MAX_BATCH_SIZE": "0"}, "MLCYCLE_MAX_BATCH_SIZE=0 must be >= 1"),
        ({"MLCYCLE_MAX_BATCH_WAIT_MS": "-1"}, "must be in [0, 10000]"),
        ({"MLCYCLE_ACCESS_LOG": "maybe"}, "is not a boolean"),
        ({"MLCYCLE_LOG_LEVEL": "LOUD"}, "is not a log level"),
        ({"MLCYCLE_WORKERS": "17"}, "MLCYCLE_WORKERS=17 must be in [1, 16]"),
    ],
)
def test_bad_settings_are_refused(environ: dict[str, str], message: str) -> None:
    if environ:
        environ = {"MLCYCLE_MODEL_URI": "/models/iris", **environ}
    with pytest.raises(SettingsError, match=message.replace("[", r"\[").replace("]", r"\]")):
        ServerSettings.from_env(environ)


def test_package_never_imports_the_operator() -> None:
    for path in PACKAGE_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in {"mlcycle", "fastapi", "pydantic"}, (path, name)


def test_environment_contract_imports_nothing_but_the_standard_library() -> None:
    code = (
        "import sys; import mlcycle_contract.environment; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'numpy', 'mlflow', 'orjson', 'starlette', 'prometheus_client', 'pydantic'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_entry_point_refuses_missing_model_uri() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mlcycle_serving"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert result.returncode == 2
    assert '"message":"Invalid settings: MLCYCLE_MODEL_URI is required"' in result.stderr
