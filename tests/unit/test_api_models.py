"""The pydantic API models: wire format, defaults, derived values, condition helpers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from mlcycle_contract import constants
from mlcycle_contract.api.common import (
    Condition,
    ConditionStatus,
    ResourceRequirements,
    find_condition,
    parse_duration,
    set_condition,
    wire_name,
)
from mlcycle_contract.api.dataset import (
    HISTORY_LIMIT,
    BuiltinDataset,
    ColumnSchema,
    DataFormat,
    DatasetSpec,
    DatasetStatus,
    DatasetVersionRecord,
)
from mlcycle_contract.api.kinds import RESOURCES
from mlcycle_contract.api.learning import (
    Algorithm,
    Direction,
    GateMetric,
    Metric,
    Task,
    algorithm_task,
    algorithms_for,
    gate_metric_task,
    metric_direction,
)
from mlcycle_contract.api.modeldeployment import (
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    ModelRuntime,
)
from mlcycle_contract.api.trainingjob import (
    MlflowRun,
    Objective,
    TrainingJobSpec,
    TrainingJobStatus,
)

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("field", "wire"),
    [
        ("test_fraction", "testFraction"),
        ("snapshot_uri", "snapshotURI"),
        ("run_url", "runURL"),
        ("target_cpu_utilization", "targetCPUUtilization"),
        ("max_batch_wait_ms", "maxBatchWaitMs"),
        ("schema_", "schema"),
        ("rows", "rows"),
    ],
)
def test_wire_names(field: str, wire: str) -> None:
    assert wire_name(field) == wire


def test_spec_reads_camel_case_and_snake_case_and_writes_camel_case() -> None:
    camel = DatasetSpec.model_validate(
        {"source": {"builtin": "wine"}, "target": "target", "split": {"testFraction": 0.3}}
    )
    snake = DatasetSpec.model_validate(
        {"source": {"builtin": "wine"}, "target": "target", "split": {"test_fraction": 0.3}}
    )
    assert camel == snake
    assert camel.to_wire()["split"] == {"testFraction": 0.3, "seed": 42, "stratify": True}
    assert camel.source.builtin is BuiltinDataset.WINE


def test_unknown_fields_are_rejected_by_name() -> None:
    with pytest.raises(ValidationError) as raised:
        DatasetSpec.model_validate({"source": {"builtin": "iris"}, "target": "t", "tragte": "x"})
    assert raised.value.errors()[0]["loc"] == ("tragte",)


def test_dataset_defaults() -> None:
    spec = DatasetSpec.model_validate({"source": {"builtin": "iris"}, "target": "target"})
    assert spec.format is DataFormat.CSV
    assert (spec.split.test_fraction, spec.split.seed, spec.split.stratify) == (0.2, 42, True)
    assert spec.profile.enabled is True
    assert spec.features is None and spec.refresh_interval is None
    assert spec.to_wire() == {
        "source": {"builtin": "iris"},
        "format": "csv",
        "target": "target",
        "split": {"testFraction": 0.2, "seed": 42, "stratify": True},
        "profile": {"enabled": True},
    }


def test_training_job_defaults_and_derived_values() -> None:
    spec = TrainingJobSpec.model_validate({"datasetRef": {"name": "houses"}, "algorithm": "ridge"})
    assert spec.backoff_limit == 1
    assert (spec.validation.folds, spec.validation.seed, spec.validation.gates) == (5, 42, [])
    assert spec.preprocessing.scaling == "standard" and spec.preprocessing.one_hot_encode
    assert spec.registry.model_name is None and spec.registry.alias is None
    assert not spec.retrain.on_new_data and not spec.retrain.on_drift
    assert spec.effective_task is Task.REGRESSION
    assert spec.effective_objective == Objective(metric=Metric.R2, direction=Direction.MAXIMIZE)
    assert spec.candidate_algorithms == [Algorithm.RIDGE]


def test_automl_candidates_and_objective_direction() -> None:
    spec = TrainingJobSpec.model_validate(
        {
            "datasetRef": {"name": "iris"},
            "objective": {"metric": "log_loss"},
            "search": {"algorithms": ["svc", "knn_classifier"], "maxTrials": 40},
        }
    )
    assert spec.candidate_algorithms == [Algorithm.SVC, Algorithm.KNN_CLASSIFIER]
    assert spec.effective_task is Task.CLASSIFICATION
    assert spec.effective_objective.direction is Direction.MINIMIZE
    assert spec.search is not None and spec.search.max_trials == 40
    assert (spec.search.sampler, spec.search.pruner) == ("tpe", "none")


def test_model_deployment_defaults() -> None:
    spec = ModelDeploymentSpec.model_validate({"model": {"name": "iris", "alias": "champion"}})
    assert spec.replicas == 1 and spec.poll_interval_seconds == 30
    assert (spec.rollout.max_surge, spec.rollout.max_unavailable) == ("25%", 0)
    assert (spec.serving.max_batch_size, spec.serving.max_batch_wait_ms) == (64, 2)
    assert spec.serving.workers == 1
    assert not spec.autoscaling.enabled
    assert (spec.autoscaling.min_replicas, spec.autoscaling.max_replicas) == (1, 5)
    assert spec.monitoring.drift is False
    assert spec.to_wire()["autoscaling"]["targetCPUUtilization"] == 80


def test_resource_quantities_accept_numbers_and_suffixes() -> None:
    resources = ResourceRequirements.model_validate(
        {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": 2}}
    )
    assert resources.to_wire() == {
        "requests": {"cpu": "250m", "memory": "512Mi"},
        "limits": {"cpu": 2},
    }
    with pytest.raises(ValidationError):
        ResourceRequirements.model_validate({"limits": {"memory": "2 GB"}})


def test_dataset_status_round_trips_with_schema_and_times() -> None:
    status = DatasetStatus(
        version="3f2a9c1b7e4d",
        snapshot_uri="s3://mlcycle/datasets/iris/3f2a9c1b7e4d.parquet",
        rows=150,
        columns=5,
        schema_=[ColumnSchema(name="petal width (cm)", dtype="float64")],
        history=[
            DatasetVersionRecord(
                version="3f2a9c1b7e4d", snapshot_uri="s3://b/k", rows=150, created_at=NOW
            )
        ],
    )
    wire = status.to_wire()
    assert wire["schema"] == [{"name": "petal width (cm)", "dtype": "float64"}]
    assert wire["snapshotURI"].startswith("s3://")
    assert wire["history"][0]["createdAt"] == "2026-11-26T12:00:00Z"
    assert "profile" not in wire and "phase" not in wire
    assert DatasetStatus.model_validate(wire) == status


def test_history_is_bounded() -> None:
    record = DatasetVersionRecord(version="v", snapshot_uri="s3://b/k", rows=1, created_at=NOW)
    with pytest.raises(ValidationError) as raised:
        DatasetStatus(history=[record] * (HISTORY_LIMIT + 1))
    assert raised.value.errors()[0]["loc"] == ("history",)


def test_training_and_deployment_status_wire_names() -> None:
    training = TrainingJobStatus(
        mlflow=MlflowRun(run_id="abc", run_url="http://mlflow/#/runs/abc", experiment_id="1"),
        metrics={"accuracy": 0.97},
    )
    assert training.to_wire()["mlflow"] == {
        "runId": "abc",
        "runURL": "http://mlflow/#/runs/abc",
        "experimentId": "1",
    }
    deployment = ModelDeploymentStatus(
        served_version=3, model_uri="models:/iris/3", runtime=ModelRuntime(sklearn="1.9.1")
    )
    assert deployment.to_wire() == {
        "servedVersion": 3,
        "modelURI": "models:/iris/3",
        "runtime": {"sklearn": "1.9.1"},
        "history": [],
        "conditions": [],
    }


def _condition(status: ConditionStatus, at: datetime, reason: str = "Ingested") -> Condition:
    return Condition(type="Ready", status=status, reason=reason, last_transition_time=at)


def test_set_condition_moves_transition_time_only_on_status_change() -> None:
    first = set_condition([], _condition(ConditionStatus.FALSE, NOW, "Ingesting"))
    later = NOW + timedelta(minutes=5)
    same = set_condition(first, _condition(ConditionStatus.FALSE, later, "StillIngesting"))
    assert len(same) == 1 and same[0].last_transition_time == NOW
    assert same[0].reason == "StillIngesting"
    changed = set_condition(same, _condition(ConditionStatus.TRUE, later))
    assert changed[0].last_transition_time == later
    progressing = Condition(
        type="Progressing", status=ConditionStatus.FALSE, reason="Done", last_transition_time=NOW
    )
    both = set_condition(changed, progressing)
    assert [c.type for c in both] == ["Ready", "Progressing"]
    assert find_condition(both, "Progressing") == progressing
    assert find_condition(both, "Degraded") is None


def test_condition_reason_must_be_camel_case() -> None:
    with pytest.raises(ValidationError) as raised:
        _condition(ConditionStatus.TRUE, NOW, reason="not camel case")
    assert raised.value.errors()[0]["loc"] == ("reason",)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("1h30m", timedelta(minutes=90)),
        ("1.5h", timedelta(minutes=90)),
        ("250ms", timedelta(milliseconds=250)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


def test_parse_duration_rejects_days() -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration("1d")


def test_learning_vocabulary_is_consistent() -> None:
    assert set(algorithms_for(Task.CLASSIFICATION)) | set(algorithms_for(Task.REGRESSION)) == set(
        Algorithm
    )
    assert algorithm_task(Algorithm.SVC) is Task.CLASSIFICATION
    assert algorithm_task(Algorithm.SVR) is Task.REGRESSION
    assert {m.value for m in Metric} <= {g.value for g in GateMetric}
    assert gate_metric_task(GateMetric.RMSE) is Task.REGRESSION
    assert gate_metric_task(GateMetric.LATENCY_P99_MS) is None
    assert metric_direction(Metric.MAE) is Direction.MINIMIZE
    for algorithm in Algorithm:
        assert "." not in algorithm.value, "names, never import paths"


def test_constants_spell_keys_under_the_api_group() -> None:
    assert constants.API_GROUP_VERSION == "mlcycle.dev/v1alpha1"
    assert [r.names for r in RESOURCES] == [
        constants.DATASET,
        constants.TRAINING_JOB,
        constants.MODEL_DEPLOYMENT,
    ]
    assert constants.TRAINING_JOB.crd_name == "trainingjobs.mlcycle.dev"
    keys = [value for name, value in vars(constants).items() if name.startswith(("LABEL_", "ANNO"))]
    assert all(key.startswith("mlcycle.dev/") for key in keys if key != constants.LABEL_MANAGED_BY)


def test_a_champion_gate_needs_the_alias_it_compares_with() -> None:
    spec = {"datasetRef": {"name": "iris"}, "algorithm": "logistic_regression",
            "validation": {"gates": [{"metric": "accuracy", "op": ">=", "baseline": "champion"}]}}
    with pytest.raises(ValidationError, match=r"set registry\.alias"):
        TrainingJobSpec.model_validate(spec)
    accepted = TrainingJobSpec.model_validate({**spec, "registry": {"alias": "champion"}})
    assert accepted.validation.gates[0].baseline == "champion"
