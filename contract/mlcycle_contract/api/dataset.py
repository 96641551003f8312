"""The Dataset kind: a versioned, profiled snapshot of tabular data."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated

from pydantic import ConfigDict, Field, StringConstraints, field_validator, model_validator

from mlcycle_contract.api.common import (
    LIST_SET,
    ApiModel,
    CelRule,
    ConditionType,
    Duration,
    ObservedStatus,
    cel_rules,
    check_exactly_one,
    exactly_one_of,
    parse_duration,
)
from mlcycle_contract.api.resource import (
    AGE_COLUMN,
    READY_COLUMN,
    PrinterColumn,
    ResourceDefinition,
)
from mlcycle_contract.constants import DATASET

HISTORY_LIMIT = 20
MIN_REFRESH_INTERVAL = timedelta(minutes=1)

ColumnName = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class BuiltinDataset(StrEnum):
    """A dataset that ships inside scikit-learn (sklearn.datasets.load_<name>)."""

    IRIS = "iris"
    WINE = "wine"
    BREAST_CANCER = "breast_cancer"
    DIABETES = "diabetes"
    DIGITS = "digits"


class DataFormat(StrEnum):
    """File format of a url or s3 source."""

    CSV = "csv"
    PARQUET = "parquet"


class DatasetPhase(StrEnum):
    """Coarse lifecycle stage; conditions carry the details."""

    PENDING = "Pending"  # accepted; its ingestion is being set up
    INGESTING = "Ingesting"
    READY = "Ready"
    FAILED = "Failed"


class DatasetConditionType(StrEnum):
    """Conditions a Dataset reports."""

    READY = ConditionType.READY.value
    REFRESHED = "Refreshed"


class DatasetSource(ApiModel):
    """Where the data comes from: exactly one of url, s3, builtin."""

    model_config = ConfigDict(json_schema_extra=cel_rules(exactly_one_of("url", "s3", "builtin")))

    url: str | None = Field(
        default=None,
        max_length=2048,
        pattern=r"^https?://\S+$",
        description="An http(s) URL of a csv or parquet file.",
    )
    s3: str | None = Field(
        default=None,
        max_length=2048,
        pattern=r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]/\S+$",
        description="An S3 object URI, s3://bucket/key; the operator's Secret holds credentials.",
    )
    builtin: BuiltinDataset | None = Field(
        default=None, description="A dataset that ships inside scikit-learn."
    )

    @model_validator(mode="after")
    def _exactly_one_source(self) -> DatasetSource:
        check_exactly_one(self, "url", "s3", "builtin")
        return self


class SplitSpec(ApiModel):
    """How the data is split into train and test sets."""

    test_fraction: float = Field(
        default=0.2, ge=0.05, le=0.5, description="Fraction of rows held out for testing."
    )
    seed: int = Field(default=42, ge=0, le=2**32 - 1, description="Random seed of the split.")
    stratify: bool = Field(
        default=True, description="Keep the target's class proportions (classification only)."
    )


class ProfileSpec(ApiModel):
    """Data profiling: statistics, plots, feature importance, quality warnings."""

    enabled: bool = Field(default=True, description="Profile each new version.")


class DatasetSpec(ApiModel):
    """The desired state of a Dataset."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            CelRule(
                rule="!has(self.features) || !(self.target in self.features)",
                message="the target column must not be listed among the features",
                field_path=".features",
            )
        )
    )

    source: DatasetSource = Field(description="Where the data comes from.")
    format: DataFormat = Field(default=DataFormat.CSV, description="File format of the source.")
    target: ColumnName = Field(description="Name of the column to predict.")
    features: list[ColumnName] | None = Field(
        default=None,
        max_length=1000,
        json_schema_extra=LIST_SET,
        description="Columns to use as features; all other columns when unset.",
    )
    split: SplitSpec = Field(default_factory=SplitSpec, description="Train/test split.")
    profile: ProfileSpec = Field(default_factory=ProfileSpec, description="Data profiling.")
    refresh_interval: Duration | None = Field(
        default=None,
        json_schema_extra=cel_rules(
            CelRule(rule="duration(self) >= duration('1m')", message="must be at least 1m")
        ),
        description="Check the url or s3 source for a change this often, e.g. 1h: an "
        "unchanged source (HTTP 304, the same ETag) downloads nothing; changed content makes "
        "a new version. A builtin source never changes and is not checked.",
    )

    @field_validator("features")
    @classmethod
    def _features_unique(cls, features: list[str] | None) -> list[str] | None:
        if features is not None and len(set(features)) != len(features):
            raise ValueError("features must not repeat")
        return features

    @field_validator("refresh_interval")
    @classmethod
    def _refresh_not_too_often(cls, interval: str | None) -> str | None:
        if interval is not None and parse_duration(interval) < MIN_REFRESH_INTERVAL:
            raise ValueError("must be at least 1m")
        return interval

    @model_validator(mode="after")
    def _target_not_a_feature(self) -> DatasetSpec:
        if self.features is not None and self.target in self.features:
            raise ValueError("the target column must not be listed among the features")
        return self


class ColumnSchema(ApiModel):
    """Name and dtype of one column of the snapshot."""

    name: ColumnName = Field(description="Column name.")
    dtype: str = Field(max_length=64, description="pandas dtype, e.g. float64, int64, category.")


class FeatureImportance(ApiModel):
    """How much one feature tells about the target."""

    name: ColumnName = Field(description="Column name.")
    importance: float = Field(description="Importance score; higher means more informative.")


class ProfileSummary(ApiModel):
    """The headline of the data profile; the full report lives in object storage."""

    top_features: list[FeatureImportance] = Field(
        default_factory=list, max_length=20, description="Most informative features, best first."
    )
    warnings: list[str] = Field(
        default_factory=list, max_length=50, description="Data quality warnings."
    )
    report_uri: str | None = Field(
        default=None, max_length=2048, description="URI of the HTML profile report."
    )


class DatasetVersionRecord(ApiModel):
    """One past version of the Dataset."""

    version: str = Field(max_length=64, description="Content hash of the snapshot.")
    snapshot_uri: str = Field(max_length=2048, description="URI of the immutable snapshot.")
    rows: int = Field(ge=0, description="Number of rows.")
    created_at: datetime = Field(description="When the version was ingested.")


class SourceValidators(ApiModel):
    """What the source said about the content last downloaded: sent back on the next check
    (If-None-Match / If-Modified-Since over http, compared with HEAD's ETag over s3)."""

    # Empty, not None, when absent: a status merge-patch would keep an omitted key's old value.
    etag: str = Field(default="", max_length=1024, description="Its ETag; empty if none.")
    last_modified: str = Field(
        default="", max_length=64, description="Its Last-Modified (http sources); empty if none."
    )


class DatasetStatus(ObservedStatus):
    """The observed state of a Dataset, written by the operator. Conditions: Ready, Refreshed
    (spec.refreshInterval: the last check's outcome)."""

    phase: DatasetPhase | None = Field(default=None, description="Coarse lifecycle stage.")
    version: str | None = Field(
        default=None, max_length=64, description="Content hash of the current snapshot."
    )
    snapshot_uri: str | None = Field(
        default=None, max_length=2048, description="URI of the current immutable snapshot."
    )
    rows: int | None = Field(default=None, ge=0, description="Number of rows.")
    columns: int | None = Field(default=None, ge=0, description="Number of columns.")
    schema_: list[ColumnSchema] = Field(
        default_factory=list, max_length=1000, description="Columns of the snapshot."
    )
    profile: ProfileSummary | None = Field(default=None, description="Profile summary.")
    history: list[DatasetVersionRecord] = Field(
        default_factory=list,
        max_length=HISTORY_LIMIT,
        description=f"Past versions, newest first, at most {HISTORY_LIMIT}.",
    )
    job_name: str | None = Field(
        default=None, max_length=63, description="The latest ingestion Job."
    )
    last_ingestion_time: datetime | None = Field(
        default=None,
        description="When the source was last downloaded and hashed, its content changed or not.",
    )
    last_check_time: datetime | None = Field(
        default=None,
        description="spec.refreshInterval: when the source was last checked for a change, "
        "whether it downloaded anything or not; the next check is this plus the interval.",
    )
    refresh_job_name: str | None = Field(
        default=None, max_length=63, description="The latest refresh check's Job."
    )
    source: SourceValidators | None = Field(
        default=None, description="The source's ETag and Last-Modified at the last download."
    )


DATASET_RESOURCE = ResourceDefinition(
    names=DATASET,
    description="A versioned, profiled snapshot of tabular data.",
    spec=DatasetSpec,
    status=DatasetStatus,
    printer_columns=(
        PrinterColumn(
            "Version", "string", ".status.version", "Content hash of the current snapshot."
        ),
        PrinterColumn("Rows", "integer", ".status.rows", "Rows of the current snapshot."),
        READY_COLUMN,
        AGE_COLUMN,
        PrinterColumn("Phase", "string", ".status.phase", "Lifecycle stage.", priority=1),
        PrinterColumn("Checked", "date", ".status.lastCheckTime",
                      "Last refresh check (spec.refreshInterval).", priority=1),
    ),
)
