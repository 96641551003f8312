"""`python -m mlcycle_trainer`: every outcome leaves termination-message JSON and the
contract's exit code; no log line or message carries a secret."""

from __future__ import annotations

import gc
import json
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlcycle_contract import environment as contract
from mlcycle_trainer import __main__ as entry

SECRET = "Sup3r-s3cret-value-xyz"


@pytest.fixture(autouse=True)
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    sigterm = signal.getsignal(signal.SIGTERM)
    for name in list(os.environ):
        if name.startswith(("MLCYCLE_", "MLFLOW_", "AWS_")):
            monkeypatch.delenv(name)
    path = tmp_path / "termination-log"
    monkeypatch.setenv(contract.TERMINATION_LOG.name, str(path))
    monkeypatch.setenv(contract.OWNER_NAME.name, "owner")
    monkeypatch.setenv(contract.AWS_SECRET_ACCESS_KEY.name, SECRET)
    yield path
    root.handlers[:], root.level = handlers, level
    signal.signal(signal.SIGTERM, sigterm)


def outcome(path: Path) -> dict[str, str]:
    error: dict[str, str] = json.loads(path.read_text())["error"]
    return error


def test_an_unknown_command_is_invalid_input(environment: Path) -> None:
    assert entry.main(["fly"]) == contract.EXIT_INVALID_INPUT
    assert outcome(environment)["reason"] == "UnknownCommand"


def test_a_missing_variable_is_named(environment: Path) -> None:
    assert entry.main([contract.COMMAND_INGEST]) == contract.EXIT_INVALID_INPUT
    error = outcome(environment)
    assert error["reason"] == "InvalidEnvironment"
    assert contract.DATASET_SPEC.name in error["message"]


def test_an_unknown_hyperparameter_fails_before_any_io(
    environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = {
        "datasetRef": {"name": "x"},
        "algorithm": "random_forest_classifier",
        "hyperparameters": {"trees": 3},
    }
    monkeypatch.setenv(contract.TRAINING_SPEC.name, json.dumps(spec))
    for name in ("NAME", "VERSION", "URI", "TARGET"):
        monkeypatch.setenv(
            f"MLCYCLE_DATASET_{name}", "s3://unreachable/x" if name == "URI" else "x"
        )
    assert entry.main([contract.COMMAND_TRAIN]) == contract.EXIT_INVALID_INPUT
    error = outcome(environment)
    assert error["reason"] == "InvalidHyperparameter"
    assert error["field"] == "spec.hyperparameters"
    assert "trees" in error["message"] and "n_estimators" in error["message"]


def test_secrets_reach_neither_the_log_nor_the_message(
    environment: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    spec = {"source": {"url": f"https://user:{SECRET}@host/d.csv"}, "target": "y", "format": SECRET}
    monkeypatch.setenv(contract.DATASET_SPEC.name, json.dumps(spec))
    assert entry.main([contract.COMMAND_INGEST]) == contract.EXIT_INVALID_INPUT
    captured = capfd.readouterr()
    assert "InvalidSpec" in captured.err
    assert len(captured.err.strip().splitlines()) == 1
    for text in (captured.out, captured.err, environment.read_text()):
        assert SECRET not in text
    assert "spec.format" in outcome(environment)["message"]
    assert outcome(environment)["field"] == "spec.format"


def test_an_unexpected_error_is_an_internal_error(
    environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> object:
        raise RuntimeError("boom")

    monkeypatch.setattr("mlcycle_trainer.ingest.run_ingest", broken)
    assert entry.main([contract.COMMAND_INGEST]) == contract.EXIT_INTERNAL_ERROR
    error = outcome(environment)
    assert error["reason"] == "InternalError"
    assert error["message"].startswith("RuntimeError: boom at test_trainer_main.py:")


def test_sigterm_ends_the_command_as_transient(environment: Path) -> None:
    """A source that never answers keeps `ingest` busy until the pod is stopped."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        spec = {
            "source": {"url": f"http://127.0.0.1:{silent.getsockname()[1]}/d.csv"},
            "target": "y",
        }
        env = {
            "PATH": os.environ["PATH"],
            contract.OWNER_NAME.name: "owner",
            contract.DATA_BUCKET.name: "bucket",
            contract.DATASET_SPEC.name: json.dumps(spec),
            contract.SOURCE_ALLOW_CIDRS.name: "127.0.0.1",
            contract.TERMINATION_LOG.name: str(environment),
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "mlcycle_trainer", "ingest"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        silent.settimeout(60)
        connection, _ = silent.accept()  # the trainer is inside the fetch now
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
        connection.close()
    assert process.returncode == contract.EXIT_TRANSIENT, stderr
    assert outcome(environment) == {"reason": "Terminated", "message": "stopped by signal SIGTERM"}


def test_the_process_exits_with_the_code_its_message_and_its_log_written(
    environment: Path,
) -> None:
    """The entry point ends the process without the interpreter's teardown: what it wrote
    must be out all the same."""
    env = {
        "PATH": os.environ["PATH"],
        contract.OWNER_NAME.name: "owner",
        contract.TERMINATION_LOG.name: str(environment),
    }
    process = subprocess.run(
        [sys.executable, "-m", "mlcycle_trainer", "fly"], env=env, capture_output=True,
        text=True, timeout=60,
    )
    assert process.returncode == contract.EXIT_INVALID_INPUT
    assert "UnknownCommand" in process.stderr
    assert outcome(environment)["reason"] == "UnknownCommand"


def test_the_command_is_imported_without_collections_and_then_frozen(
    environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, object] = {}

    def importing(name: str) -> None:
        seen["collecting while importing"] = gc.isenabled()
        return None  # an unknown command: the run ends there

    monkeypatch.setattr(entry, "_command", importing)
    frozen_before = gc.get_freeze_count()
    try:
        assert entry.main(["fly"]) == contract.EXIT_INVALID_INPUT
        assert seen == {"collecting while importing": False}
        assert gc.isenabled()
        assert gc.get_freeze_count() > frozen_before
    finally:
        gc.unfreeze()
        gc.enable()
