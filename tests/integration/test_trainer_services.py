"""The trainer's two commands as subprocesses against the real MinIO and MLflow.

`ingest` snapshots and profiles a Dataset in the data bucket; `train` fits, validates,
logs and registers a model in MLflow, whose artifacts land in MinIO. Bad input ends with
EXIT_INVALID_INPUT and the reason; an unreachable service with EXIT_TRANSIENT.
"""

from __future__ import annotations

import http.server
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from mlcycle_contract import environment as contract
from mlcycle_trainer.errors import SNAPSHOT_CORRUPTED, SOURCE_NOT_ALLOWED
from mlcycle_trainer.snapshots import parquet_bytes
from mlcycle_trainer.storage import ObjectStore, S3Location

pytestmark = pytest.mark.e2e

DATA_BUCKET = "mlcycle-data"
MLFLOW_BUCKET = "mlflow"
SUFFIX = uuid.uuid4().hex[:8]
NAMESPACE = f"it-{SUFFIX}"
EXPERIMENT = f"trainer-it-{SUFFIX}"

LOOPBACK = "127.0.0.1"
CITIES = ["Oslo", "Rome", "Lima", ""]  # "" is a missing value


def people_row(i: int) -> str:
    income = "" if i % 9 == 0 else str(1000 + 37 * i)
    bought = "yes" if (i % 45) > 20 or i % 4 == 1 else "no"
    return f"{20 + i % 45},{CITIES[i % 4]},{income},{bought}"


PEOPLE_CSV = "\n".join(["age,city,income,bought", *map(people_row, range(240))]) + "\n"


@dataclass
class Outcome:
    code: int
    message: dict[str, Any]
    stdout: str
    stderr: str
    seconds: float


def run_trainer(
    command: str, owner: str, env: dict[str, str], services_env: dict[str, str], workdir: Path
) -> Outcome:
    termination_log = workdir / f"{command}-{owner}-{uuid.uuid4().hex[:6]}.json"
    full_env = {
        "PATH": os.environ["PATH"],
        "HOME": str(workdir),
        "MPLCONFIGDIR": str(workdir / "matplotlib"),
        **services_env,
        contract.DATA_BUCKET.name: DATA_BUCKET,
        contract.NAMESPACE.name: NAMESPACE,
        contract.OWNER_NAME.name: owner,
        contract.OWNER_UID.name: f"uid-{owner}",
        contract.IMAGE.name: "mlcycle-trainer:test",
        contract.TERMINATION_LOG.name: str(termination_log),
        contract.MLFLOW_EXPERIMENT_NAME.name: EXPERIMENT,
        contract.SOURCE_ALLOW_CIDRS.name: LOOPBACK,  # where web_server serves
        **env,
    }
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "mlcycle_trainer", command],
        env=full_env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=600,
    )
    outcome = Outcome(
        result.returncode,
        json.loads(termination_log.read_text()),
        result.stdout,
        result.stderr,
        time.perf_counter() - started,
    )
    secret = services_env["AWS_SECRET_ACCESS_KEY"]
    for text in (outcome.stdout, outcome.stderr, termination_log.read_text()):
        assert secret not in text
    assert len(termination_log.read_bytes()) <= contract.TERMINATION_MESSAGE_LIMIT
    print(f"{command} {owner}: exit {outcome.code} in {outcome.seconds:.1f} s")
    return outcome


def ingest(
    owner: str, spec: dict[str, Any], services_env: dict[str, str], workdir: Path
) -> Outcome:
    return run_trainer(
        contract.COMMAND_INGEST,
        owner,
        {contract.DATASET_SPEC.name: json.dumps(spec)},
        services_env,
        workdir,
    )


def train(
    owner: str,
    spec: dict[str, Any],
    dataset: Outcome,
    dataset_name: str,
    target: str,
    services_env: dict[str, str],
    workdir: Path,
    **extra_env: str,
) -> Outcome:
    env = {
        contract.TRAINING_SPEC.name: json.dumps(spec),
        contract.DATASET_NAME.name: dataset_name,
        contract.DATASET_VERSION.name: dataset.message["version"],
        contract.DATASET_URI.name: dataset.message["snapshotURI"],
        contract.DATASET_TARGET.name: target,
        **extra_env,
    }
    return run_trainer(contract.COMMAND_TRAIN, owner, env, services_env, workdir)


def s3_client(services_env: dict[str, str]) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=services_env["MLFLOW_S3_ENDPOINT_URL"],
        aws_access_key_id=services_env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=services_env["AWS_SECRET_ACCESS_KEY"],
        region_name="us-east-1",
    )


def keys_under(services_env: dict[str, str], bucket: str, prefix: str) -> list[str]:
    pages = (
        s3_client(services_env)
        .get_paginator("list_objects_v2")
        .paginate(Bucket=bucket, Prefix=prefix)
    )
    return [item["Key"] for page in pages for item in page.get("Contents", [])]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("trainer")


@pytest.fixture(scope="module")
def web_server(workdir: Path) -> Iterator[str]:
    """A plain HTTP server on the loopback address, serving the files in `site/`."""
    site = workdir / "site"
    site.mkdir()
    (site / "people.csv").write_text(PEOPLE_CSV)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(site), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer((LOOPBACK, 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://{LOOPBACK}:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


IRIS_SPEC = {"source": {"builtin": "iris"}, "target": "species", "profile": {"enabled": True}}


@pytest.fixture(scope="module")
def iris(services_env: dict[str, str], workdir: Path) -> Outcome:
    return ingest("iris", IRIS_SPEC, services_env, workdir)


def test_ingest_writes_a_versioned_snapshot_and_profile(
    iris: Outcome, services_env: dict[str, str]
) -> None:
    assert iris.code == contract.EXIT_OK, iris.stderr
    message = iris.message
    version = message["version"]
    assert len(version) == 16 and int(version, 16) >= 0
    prefix = f"datasets/{NAMESPACE}/iris/{version}/"
    assert message["snapshotURI"] == f"s3://{DATA_BUCKET}/{prefix}data.parquet"
    assert (message["rows"], message["columns"]) == (150, 5)
    assert message["schema"][-1] == {"name": "species", "dtype": "int64"}
    assert {c["dtype"] for c in message["schema"][:-1]} == {"float64"}
    profile = message["profile"]
    assert 1 <= len(profile["topFeatures"]) <= 5
    assert profile["topFeatures"][0]["name"].startswith("petal")
    assert profile["reportURI"] == f"s3://{DATA_BUCKET}/{prefix}profile/report.html"
    keys = set(keys_under(services_env, DATA_BUCKET, prefix))
    assert {
        f"{prefix}data.parquet",
        f"{prefix}profile/profile.json",
        f"{prefix}profile/report.html",
        f"{prefix}profile/histograms.png",
        f"{prefix}profile/correlations.png",
        f"{prefix}profile/target.png",
        f"{prefix}profile/feature_importance.png",
    } <= keys


def test_ingesting_the_same_content_again_reuses_the_snapshot(
    iris: Outcome, services_env: dict[str, str], workdir: Path
) -> None:
    again = ingest("iris", IRIS_SPEC, services_env, workdir)
    assert again.code == contract.EXIT_OK, again.stderr
    assert again.message == iris.message
    assert "exists already; kept as it is" in again.stderr
    assert "Profile" in again.stderr and "not computed again" in again.stderr


def mlflow_client(services_env: dict[str, str]) -> MlflowClient:
    return MlflowClient(tracking_uri=services_env["MLFLOW_TRACKING_URI"])


IRIS_MODEL = f"iris-{SUFFIX}"
IRIS_TRAINING = {
    "datasetRef": {"name": "iris"},
    "algorithm": "random_forest_classifier",
    "hyperparameters": {"n_estimators": 50, "max_depth": 4},
    "validation": {"folds": 3, "gates": [{"metric": "accuracy", "op": ">=", "threshold": 0.8}]},
    "registry": {"modelName": IRIS_MODEL, "alias": "champion"},
}


@pytest.fixture(scope="module")
def iris_model(iris: Outcome, services_env: dict[str, str], workdir: Path) -> Outcome:
    return train("iris-rf", IRIS_TRAINING, iris, "iris", "species", services_env, workdir)


def test_train_logs_registers_and_promotes_the_model(
    iris: Outcome, iris_model: Outcome, services_env: dict[str, str]
) -> None:
    assert iris_model.code == contract.EXIT_OK, iris_model.stderr
    message = iris_model.message
    assert message["model"] == {"name": IRIS_MODEL, "version": 1, "uri": f"models:/{IRIS_MODEL}/1"}
    assert message["gates"] == {"passed": True, "failed": []}
    assert message["alias"] == {"name": "champion", "moved": True}
    assert set(message["runtime"]) == {"python", "sklearn", "numpy"}
    assert message["metrics"]["accuracy"] >= 0.8
    assert message["fitSeconds"] > 0
    print(f"fit {message['fitSeconds']:.3f} s, metrics {message['metrics']}")

    client = mlflow_client(services_env)
    run = client.get_run(message["mlflow"]["runId"])
    assert run.info.status == "FINISHED"
    assert run.info.experiment_id == message["mlflow"]["experimentId"]
    assert run.info.run_name == "iris-rf"
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    assert (params["n_estimators"], params["max_depth"], params["random_state"]) == (
        "50",
        "4",
        "42",
    )
    assert params["algorithm.name"] == "random_forest_classifier"
    assert params["validation.gates"] == "accuracy >= 0.8"
    for metric in (
        "accuracy",
        "f1_macro",
        "roc_auc",
        "log_loss",
        "cv_accuracy_mean",
        "generalization_gap",
        "latency_p50_ms",
        "latency_p99_ms",
        "throughput_rows_per_second",
        "model_size_bytes",
        "fit_seconds",
    ):
        assert metric in metrics, metric
    assert tags[contract.TAG_DATASET_VERSION] == iris.message["version"]
    assert tags["mlcycle.dataset.uri"] == iris.message["snapshotURI"]
    assert tags[contract.TAG_TRAININGJOB_UID] == "uid-iris-rf"
    assert tags["mlcycle.namespace"] == NAMESPACE
    assert tags["mlcycle.algorithm"] == "random_forest_classifier"
    assert tags["mlcycle.image"] == "mlcycle-trainer:test"
    for key in ("runtime.python", "runtime.sklearn", "runtime.numpy"):
        assert tags[key] == message["runtime"][key.split(".")[1]]

    version = client.get_model_version(IRIS_MODEL, "1")
    assert version.run_id == run.info.run_id
    assert version.tags[contract.runtime_tag("sklearn")] == message["runtime"]["sklearn"]
    assert version.tags[contract.TAG_DATASET_VERSION] == iris.message["version"]
    assert version.tags[contract.TAG_GATES_PASSED] == "true"
    assert client.get_model_version_by_alias(IRIS_MODEL, "champion").version == "1"

    artifacts = keys_under(services_env, MLFLOW_BUCKET, f"{run.info.experiment_id}/")
    assert any(key.endswith("/model.skops") for key in artifacts), artifacts
    assert any(key.endswith("/MLmodel") for key in artifacts), artifacts


def test_the_registered_model_loads_and_predicts_in_a_fresh_process(
    iris_model: Outcome, services_env: dict[str, str], workdir: Path
) -> None:
    code = (
        "import mlflow, pandas as pd\n"
        f"model = mlflow.pyfunc.load_model('models:/{IRIS_MODEL}@champion')\n"
        "row = {'petal length (cm)': [1.4], 'petal width (cm)': [0.2],"
        " 'sepal length (cm)': [5.1], 'sepal width (cm)': [3.5]}\n"
        "print(int(model.predict(pd.DataFrame(row))[0]))\n"
    )
    env = {"PATH": os.environ["PATH"], "HOME": str(workdir), **services_env}
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "0"  # setosa


def test_a_failed_gate_registers_but_does_not_move_the_alias(
    iris: Outcome, iris_model: Outcome, services_env: dict[str, str], workdir: Path
) -> None:
    strict = {
        **IRIS_TRAINING,
        "validation": {
            "folds": 0,
            "gates": [
                {"metric": "accuracy", "op": ">", "threshold": 1.0},
                {"metric": "latency_p99_ms", "op": "<", "threshold": 100000},
            ],
        },
    }
    outcome = train("iris-strict", strict, iris, "iris", "species", services_env, workdir)
    assert outcome.code == contract.EXIT_OK, outcome.stderr
    message = outcome.message
    assert message["model"]["version"] == 2
    assert message["gates"]["passed"] is False
    assert message["gates"]["failed"] == [
        f"accuracy > 1 (got {message['metrics']['accuracy']:.4g})"
    ]
    assert message["alias"] == {"name": "champion", "moved": False}
    assert not any(key.startswith("cv_") for key in message["metrics"])
    client = mlflow_client(services_env)
    assert client.get_model_version_by_alias(IRIS_MODEL, "champion").version == "1"
    assert client.get_model_version(IRIS_MODEL, "2").tags[contract.TAG_GATES_PASSED] == "false"
    run = client.get_run(message["mlflow"]["runId"])
    assert run.data.tags["mlcycle.gates.failed"].startswith("accuracy > 1 (got")


def test_a_csv_over_http_with_text_and_gaps_trains_end_to_end(
    web_server: str, services_env: dict[str, str], workdir: Path
) -> None:
    spec = {"source": {"url": f"{web_server}/people.csv"}, "format": "csv", "target": "bought"}
    dataset = ingest("people", spec, services_env, workdir)
    assert dataset.code == contract.EXIT_OK, dataset.stderr
    dtypes = {c["name"]: c["dtype"] for c in dataset.message["schema"]}
    assert dtypes == {"age": "int64", "city": "string", "income": "float64", "bought": "string"}
    warnings = " ".join(dataset.message["profile"]["warnings"])
    assert "missing values" in warnings

    training = {
        "datasetRef": {"name": "people"},
        "algorithm": "logistic_regression",
        "hyperparameters": {"C": 0.5, "max_iter": 500},
        "preprocessing": {"scaling": "minmax", "oneHotEncode": True},
        "objective": {"metric": "f1_macro"},
        "registry": {"modelName": f"people-{SUFFIX}"},
    }
    model = train("people-lr", training, dataset, "people", "bought", services_env, workdir)
    assert model.code == contract.EXIT_OK, model.stderr
    assert model.message["objective"]["metric"] == "f1_macro"
    assert model.message["model"]["version"] == 1
    assert "alias" not in model.message


@pytest.mark.parametrize(("policy", "address"), [
    ({}, "127.0.0.1"),  # loopback, without the allow-list entry
    ({contract.SOURCE_DENY_CIDRS.name: "10.96.0.0/12"}, "10.96.0.1"),  # the Service range
])
def test_a_url_source_the_policy_refuses_is_never_fetched(
    policy: dict[str, str], address: str, web_server: str, services_env: dict[str, str],
    workdir: Path,
) -> None:
    port = web_server.rsplit(":", 1)[1]
    spec = {"source": {"url": f"http://{address}:{port}/people.csv"}, "target": "bought"}
    outcome = run_trainer(contract.COMMAND_INGEST, "refused",
                          {contract.DATASET_SPEC.name: json.dumps(spec),
                           contract.SOURCE_ALLOW_CIDRS.name: "", **policy},
                          services_env, workdir)
    assert outcome.code == contract.EXIT_INVALID_INPUT, outcome.stderr
    error = outcome.message["error"]
    assert (error["reason"], error["field"]) == (SOURCE_NOT_ALLOWED, "spec.source.url")
    assert f"spec.source.url: http://{address}:{port}/people.csv resolves to {address}" in (
        error["message"])
    assert not keys_under(services_env, DATA_BUCKET, f"datasets/{NAMESPACE}/refused/")


def test_a_regressor_trains_on_a_builtin_without_profile(
    services_env: dict[str, str], workdir: Path
) -> None:
    spec = {
        "source": {"builtin": "diabetes"},
        "target": "progression",
        "profile": {"enabled": False},
    }
    dataset = ingest("diabetes", spec, services_env, workdir)
    assert dataset.code == contract.EXIT_OK, dataset.stderr
    assert "profile" not in dataset.message
    training = {
        "datasetRef": {"name": "diabetes"},
        "algorithm": "ridge",
        "hyperparameters": {"alpha": 0.5},
        "validation": {"folds": 3, "gates": [{"metric": "r2", "op": ">", "threshold": 0.2}]},
        "registry": {"modelName": f"diabetes-{SUFFIX}", "alias": "champion"},
    }
    model = train(
        "diabetes-ridge", training, dataset, "diabetes", "progression", services_env, workdir
    )
    assert model.code == contract.EXIT_OK, model.stderr
    assert {"r2", "rmse", "mae", "cv_r2_mean"} <= set(model.message["metrics"])
    assert model.message["alias"]["moved"] is True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


BAD_INGESTS = [
    ("TargetColumnMissing", {"source": {"url": "{web}/people.csv"}, "target": "churned"}),
    (
        "FeatureColumnMissing",
        {"source": {"builtin": "iris"}, "target": "species", "features": ["petal size"]},
    ),
    ("SourceUnreadable", {"source": {"url": "{web}/missing.csv"}, "target": "y"}),
    ("SourceUnreadable", {"source": {"s3": f"s3://{DATA_BUCKET}/nothing/here.csv"}, "target": "y"}),
    (
        "SourceUnreadable",
        {"source": {"url": "{web}/people.csv"}, "format": "parquet", "target": "bought"},
    ),
    ("InvalidSpec", {"source": {"builtin": "iris"}, "format": "xlsx", "target": "species"}),
]


@pytest.mark.parametrize(
    ("reason", "spec"), BAD_INGESTS, ids=[f"{r}-{i}" for i, (r, _) in enumerate(BAD_INGESTS)]
)
def test_bad_ingest_input_is_invalid_input_with_its_reason(
    reason: str,
    spec: dict[str, Any],
    web_server: str,
    services_env: dict[str, str],
    workdir: Path,
) -> None:
    spec = json.loads(json.dumps(spec).replace("{web}", web_server))
    outcome = ingest("bad", spec, services_env, workdir)
    assert outcome.code == contract.EXIT_INVALID_INPUT, outcome.stderr
    assert outcome.message["error"]["reason"] == reason
    assert f"failed: {reason}:" in outcome.stderr
    if reason == "TargetColumnMissing":
        assert "'churned'" in outcome.message["error"]["message"]
        assert "age, city, income, bought" in outcome.message["error"]["message"]


@pytest.mark.parametrize(
    ("reason", "changes"),
    [
        ("InvalidHyperparameter", {"hyperparameters": {"n_trees": 5}}),
        ("InvalidHyperparameter", {"hyperparameters": {"n_estimators": "five"}}),
        ("InvalidSpec", {"algorithm": "xgboost"}),
        ("InvalidSpec", {"objective": {"metric": "r2"}}),
    ],
)
def test_bad_training_input_is_invalid_input_with_its_reason(
    reason: str,
    changes: dict[str, Any],
    iris: Outcome,
    services_env: dict[str, str],
    workdir: Path,
) -> None:
    outcome = train(
        "bad", {**IRIS_TRAINING, **changes}, iris, "iris", "species", services_env, workdir
    )
    assert outcome.code == contract.EXIT_INVALID_INPUT, outcome.stderr
    assert outcome.message["error"]["reason"] == reason


def test_a_missing_snapshot_is_invalid_input(
    iris: Outcome, services_env: dict[str, str], workdir: Path
) -> None:
    gone = Outcome(
        0,
        {"version": "0" * 16, "snapshotURI": f"s3://{DATA_BUCKET}/nope/data.parquet"},
        "",
        "",
        0.0,
    )
    outcome = train("bad", IRIS_TRAINING, gone, "iris", "species", services_env, workdir)
    assert outcome.code == contract.EXIT_INVALID_INPUT
    assert outcome.message["error"]["reason"] == "SnapshotUnreadable"


def test_the_storage_refuses_a_second_write_of_a_snapshot_key(
    services_env: dict[str, str]
) -> None:
    store = ObjectStore(s3_client(services_env))
    location = S3Location(DATA_BUCKET, f"datasets/{NAMESPACE}/once/{SUFFIX}/data.parquet")
    assert store.put_new(location, b"first", "text/plain") is True
    assert store.put_new(location, b"second", "text/plain") is False
    assert store.get(location) == b"first"


def test_a_snapshot_changed_after_ingestion_is_corrupted_and_nothing_is_trained(
    services_env: dict[str, str], workdir: Path
) -> None:
    spec = {"source": {"builtin": "wine"}, "target": "cultivar", "profile": {"enabled": False}}
    dataset = ingest("tampered", spec, services_env, workdir)
    assert dataset.code == contract.EXIT_OK, dataset.stderr
    # What someone allowed to delete objects can do: delete the snapshot, write another.
    location = S3Location.parse(dataset.message["snapshotURI"])
    s3 = s3_client(services_env)
    frame = pd.read_parquet(io.BytesIO(s3.get_object(Bucket=location.bucket,
                                                     Key=location.key)["Body"].read()))
    frame.loc[0, "cultivar"] = 2
    s3.delete_object(Bucket=location.bucket, Key=location.key)
    s3.put_object(Bucket=location.bucket, Key=location.key, Body=parquet_bytes(frame))

    model_name = f"tampered-{SUFFIX}"
    training = {**IRIS_TRAINING, "datasetRef": {"name": "tampered"},
                "registry": {"modelName": model_name}}
    outcome = train("tampered-rf", training, dataset, "tampered", "cultivar", services_env,
                    workdir)
    assert outcome.code == contract.EXIT_INVALID_INPUT, outcome.stderr
    error = outcome.message["error"]
    assert error["reason"] == SNAPSHOT_CORRUPTED
    assert f"dataset version {dataset.message['version']}" in error["message"]
    client = mlflow_client(services_env)
    assert not client.search_registered_models(f"name = '{model_name}'")
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id],
                              "attributes.run_name = 'tampered-rf'") if experiment else []
    assert not runs


def test_unreachable_storage_is_transient(services_env: dict[str, str], workdir: Path) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    unreachable = {**services_env,
                   "MLFLOW_S3_ENDPOINT_URL": nowhere, "AWS_ENDPOINT_URL_S3": nowhere}
    outcome = ingest("iris", IRIS_SPEC, unreachable, workdir)
    assert outcome.code == contract.EXIT_TRANSIENT, outcome.stderr
    assert outcome.message["error"]["reason"] == "StorageUnavailable"


def test_unreachable_tracking_is_transient(
    iris: Outcome, services_env: dict[str, str], workdir: Path
) -> None:
    unreachable = {**services_env, "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{free_port()}"}
    outcome = train(
        "iris-rf",
        IRIS_TRAINING,
        iris,
        "iris",
        "species",
        unreachable,
        workdir,
        MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
    )
    assert outcome.code == contract.EXIT_TRANSIENT, outcome.stderr
    assert outcome.message["error"]["reason"] == "TrackingUnavailable"
