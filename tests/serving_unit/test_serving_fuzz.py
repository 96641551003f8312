"""Fuzzing the real server with schemathesis: no 5xx, no crash, over a fixed budget.

`python -m mlcycle_serving` runs as a subprocess over a real model (the trainer's pipeline,
with text columns and missing values: `churn_model`), on uvicorn as in a Pod. schemathesis
reads the server's own `/openapi.json` and, for every operation, generates requests that fit
it (positive) and requests that break it (negative: wrong types, missing fields, extra
ones), with a fixed seed and a fixed number of examples. Every answer must be below 500,
the process must stay up, and it must log no failed request.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from starlette.testclient import TestClient

EXAMPLES_PER_INFERENCE_OPERATION = 900
"""Per generation mode: 3 inference operations x 2 modes x 900 = 5,400 requests at least."""
EXAMPLES_PER_OTHER_OPERATION = 25
MINIMUM_REQUESTS = 5_000
MAX_ITEMS = 6
FUZZ_SUMMARY = "fuzz-summary:"


@pytest.fixture(scope="module")
def server(
    churn_model: tuple[Any, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log_path = tmp_path_factory.mktemp("fuzz") / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MLCYCLE_"))}
    env |= {
        "MLCYCLE_MODEL_URI": str(churn_model[1]),
        "MLCYCLE_MODEL_NAME": "churn",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "MLCYCLE_SHUTDOWN_DELAY_SECONDS": "0",
    }
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlcycle_serving"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            urllib.request.urlopen(f"{base}/v2/health/ready", timeout=2).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(log_path.read_text()[-3000:]) from None
            time.sleep(0.1)
    yield base, process, log_path
    process.terminate()
    process.wait(timeout=30)


def bounded(node: Any) -> Any:
    """The document with every array capped at MAX_ITEMS items: generating long arrays is
    what costs time, and a long array only repeats what a short one exercises."""
    if isinstance(node, list):
        return [bounded(item) for item in node]
    if not isinstance(node, dict):
        return node
    copy = {key: bounded(value) for key, value in node.items()}
    if copy.get("type") == "array":
        copy["maxItems"] = min(copy.get("maxItems", MAX_ITEMS), MAX_ITEMS)
    return copy


def fuzz(
    operation: Any,
    mode: GenerationMode,
    examples: int,
    base: str,
    session: requests.Session,
    statuses: Counter[int],
) -> int:
    """Send up to `examples` generated requests to one operation; how many were sent."""
    sent = 0

    @seed(20261130)
    @settings(
        max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def send(case: schemathesis.Case) -> None:
        nonlocal sent
        sent += 1
        response = case.call_and_validate(
            base_url=base, session=session, checks=[not_a_server_error]
        )
        statuses[response.status_code] += 1

    try:
        send()
    except Unsatisfiable:  # negative: an operation without parameters or body has no invalid form
        assert mode is GenerationMode.NEGATIVE and sent == 0, operation.label
    return sent


def test_thousands_of_generated_requests_get_no_5xx_and_the_server_stays_up(
    server: tuple[str, subprocess.Popen[bytes], Path],
) -> None:
    base, process, log_path = server
    document = requests.get(f"{base}/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(bounded(document))
    sent: dict[str, int] = {}
    session = requests.Session()
    statuses: Counter[int] = Counter()
    for result in schema.get_all_operations():
        operation = result.ok()
        inference = operation.method.upper() == "POST"
        examples = EXAMPLES_PER_INFERENCE_OPERATION if inference else EXAMPLES_PER_OTHER_OPERATION
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            label = f"{operation.label} ({mode.value})"
            sent[label] = fuzz(operation, mode, examples, base, session, statuses)
    total = sum(sent.values())
    summary = {"requests": total, "statuses": dict(sorted(statuses.items())), "operations": sent}
    print(f"{FUZZ_SUMMARY} {json.dumps(summary)}")  # bench.serving.fuzz reads this line
    assert total >= MINIMUM_REQUESTS, sent
    assert process.poll() is None, log_path.read_text()[-3000:]
    log = log_path.read_text()
    assert "Request failed" not in log and "Traceback" not in log, log[-3000:]


def test_the_openapi_document_describes_the_models_columns(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    assert document["openapi"] == "3.0.3"
    v1 = document["paths"]["/v1/models/{name}:predict"]
    assert v1["parameters"][0]["schema"] == {"type": "string", "enum": ["iris"]}
    row = v1["post"]["requestBody"]["content"]["application/json"]["schema"]["properties"][
        "instances"
    ]["items"]
    assert row["required"] == [
        "sepal length (cm)",
        "sepal width (cm)",
        "petal length (cm)",
        "petal width (cm)",
    ]
    assert row["properties"]["sepal width (cm)"] == {"type": "number", "nullable": False}
    assert {"/invocations", "/v2/models/{name}/infer"} <= set(document["paths"])


def test_the_server_process_predicts_what_the_pipeline_does(
    server: tuple[str, subprocess.Popen[bytes], Path], churn_model: tuple[Any, Path]
) -> None:
    """The process runs without pyarrow (`server.leave_out_arrow`): text columns and
    missing values still reach the pipeline as they did in training."""
    import numpy as np
    import pandas as pd

    base, process, _ = server
    rows = [
        [None, 52_000.0, "paris", "gold"],
        [41.0, None, None, "basic"],
        [29.0, 38_000.0, "lyon", None],
        [35.0, 61_000.0, "nice", "gold"],
    ]
    columns = ["age", "income", "city", "plan"]
    frame = pd.DataFrame(rows, columns=columns).astype(
        {"age": "float64", "income": "float64", "city": object, "plan": object}
    )
    expected = [int(v) for v in churn_model[0].predict(frame.where(frame.notna(), np.nan))]
    body = {"dataframe_split": {"columns": columns, "data": rows}}
    answer = requests.post(f"{base}/invocations", json=body, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["predictions"] == expected
    assert "libarrow" not in Path(f"/proc/{process.pid}/maps").read_text()
