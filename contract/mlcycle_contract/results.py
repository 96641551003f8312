"""The typed results of the trainer's commands, as it writes them to the termination message.

The trainer writes one of these (compact JSON, camelCase like the API, at most
`environment.TERMINATION_MESSAGE_LIMIT` bytes) and the operator parses it with the same
model, so a malformed result is an error, never a silent default. A result shrunk to fit the
limit says so with `truncated: true`; the full details live in S3 and MLflow.
"""

from __future__ import annotations

from pydantic import Field

from mlcycle_contract.api.common import ApiModel
from mlcycle_contract.api.dataset import ColumnSchema, ProfileSummary, SourceValidators
from mlcycle_contract.api.evaluation import ChampionScores
from mlcycle_contract.api.modeldeployment import ModelRuntime
from mlcycle_contract.api.trainingjob import ObjectiveValue, RegisteredModelVersion


class CommandResult(ApiModel):
    """What every result may say about itself."""

    truncated: bool | None = Field(
        default=None, description="True when parts were dropped to fit the size limit."
    )


class IngestionResult(CommandResult):
    """`ingest` succeeded: the snapshot written, its shape and profile."""

    version: str = Field(max_length=64, description="Content hash of the snapshot.")
    snapshot_uri: str = Field(max_length=2048, description="URI of the immutable snapshot.")
    rows: int = Field(ge=0, description="Number of rows.")
    columns: int = Field(ge=0, description="Number of columns.")
    schema_: list[ColumnSchema] = Field(description="Columns of the snapshot.")
    profile: ProfileSummary | None = Field(
        default=None, description="Profile summary, when profiling is enabled."
    )
    source: SourceValidators | None = Field(
        default=None, description="The source's ETag and Last-Modified, when it sent them."
    )
    downloaded_bytes: int | None = Field(
        default=None, ge=0, description="Bytes downloaded from a url or s3 source."
    )


class SourceUnchangedResult(CommandResult):
    """`ingest` on a refresh check: the source has not changed since its last download, and
    nothing was downloaded."""

    unchanged: bool = Field(description="Always true; tells this result from an ingestion.")
    evidence: str = Field(
        max_length=512, description="How the source said so, e.g. HTTP 304 Not Modified."
    )
    downloaded_bytes: int = Field(default=0, ge=0, description="Bytes downloaded: 0.")


class TrackingRun(ApiModel):
    """The MLflow run of a training."""

    run_id: str = Field(max_length=64, description="MLflow run id.")
    experiment_id: str = Field(max_length=64, description="MLflow experiment id.")


class GateOutcome(ApiModel):
    """Whether every validation gate held, and a line for each that did not."""

    passed: bool = Field(description="True when every gate held.")
    failed: list[str] = Field(default_factory=list, description="The gates that did not hold.")


class AliasOutcome(ApiModel):
    """What became of spec.registry.alias."""

    name: str = Field(max_length=63, description="The alias.")
    moved: bool = Field(description="True when it now points at the new version.")


class TrainerTimings(ApiModel):
    """Where a run's time went inside the trainer: the wall-clock seconds of each phase."""

    process_started: float = Field(
        description="When the trainer's process started, in seconds since the epoch (the "
        "node's clock): what the phases add to."
    )
    phases: dict[str, float] = Field(
        description="Seconds of each phase, in the order they ran, from the process's start "
        "to the result (e.g. imports, read snapshot, fit, log and register model)."
    )


class TrainingResult(CommandResult):
    """`train` succeeded: the model registered, how it measured, and whether it is promoted."""

    metrics: dict[str, float] = Field(description="Holdout, training, cv_* and timing metrics.")
    fit_seconds: float = Field(ge=0, description="Seconds the fit took.")
    model: RegisteredModelVersion = Field(description="The registered model version.")
    mlflow: TrackingRun = Field(description="The MLflow run.")
    runtime: ModelRuntime = Field(description="The runtime the model was trained in.")
    gates: GateOutcome = Field(description="The validation gates' outcome.")
    dataset_version: str = Field(max_length=64, description="The dataset version trained on.")
    objective: ObjectiveValue | None = Field(
        default=None, description="The objective metric, when it was measured."
    )
    alias: AliasOutcome | None = Field(
        default=None, description="The alias, when spec.registry.alias is set."
    )
    champion: ChampionScores | None = Field(
        default=None, description="The champion compared with, when a gate has a baseline."
    )
    timings: TrainerTimings | None = Field(
        default=None, description="The trainer's phases, when it could time them; the first "
        "part dropped to fit the size limit."
    )


class SearchWorkerResult(CommandResult):
    """`search` ended in one worker: the study is done for it (budget, goal or deadline)."""

    trials: int = Field(ge=0, description="Trials this worker finished.")
    stopped_by: str = Field(
        max_length=64, description="maxTrials, goal or timeout: why no further trial started."
    )


class Failure(ApiModel):
    """Why a command failed."""

    reason: str = Field(min_length=1, max_length=128, description="CamelCase reason.")
    message: str = Field(description="What went wrong; names the field and the problem.")
    field: str | None = Field(
        default=None, max_length=256, description="Path of the offending input, e.g. spec.target."
    )


class FailureResult(CommandResult):
    """Any command failed."""

    error: Failure = Field(description="Why.")
