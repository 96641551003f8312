"""The ModelDeployment kind: a registered model served behind a Service, following an alias."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import ConfigDict, Field, model_validator

from mlcycle_contract.api.common import (
    ApiModel,
    CelRule,
    ConditionType,
    ImageReference,
    IntOrPercent,
    ModelAlias,
    ModelName,
    ObservedStatus,
    ResourceRequirements,
    cel_rules,
    check_exactly_one,
    exactly_one_of,
)
from mlcycle_contract.api.resource import (
    AGE_COLUMN,
    READY_COLUMN,
    PrinterColumn,
    ResourceDefinition,
    ScaleSubresource,
)
from mlcycle_contract.constants import MODEL_DEPLOYMENT
from mlcycle_contract.drift import FeatureScore

HISTORY_LIMIT = 10


class ModelReference(ApiModel):
    """A registered MLflow model: a fixed version, or an alias the deployment follows."""

    model_config = ConfigDict(json_schema_extra=cel_rules(exactly_one_of("version", "alias")))

    name: ModelName = Field(description="Registered model name.")
    version: int | None = Field(default=None, ge=1, description="A fixed model version.")
    alias: ModelAlias | None = Field(
        default=None, description="An alias to follow, e.g. champion; moving it rolls out."
    )

    @model_validator(mode="after")
    def _version_or_alias(self) -> ModelReference:
        check_exactly_one(self, "version", "alias")
        return self


class Autoscaling(ApiModel):
    """A HorizontalPodAutoscaler on CPU; when enabled it owns the replica count."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            CelRule(
                rule="!has(self.minReplicas) || !has(self.maxReplicas) || "
                "self.maxReplicas >= self.minReplicas",
                message="maxReplicas must be at least minReplicas",
                field_path=".maxReplicas",
            )
        )
    )

    enabled: bool = Field(default=False, description="Create an autoscaler.")
    min_replicas: int = Field(default=1, ge=1, le=100, description="Fewest replicas.")
    max_replicas: int = Field(default=5, ge=1, le=100, description="Most replicas.")
    target_cpu_utilization: int = Field(
        default=80, ge=1, le=100, description="Target average CPU utilization, percent of requests."
    )

    @model_validator(mode="after")
    def _max_at_least_min(self) -> Autoscaling:
        if self.max_replicas < self.min_replicas:
            raise ValueError("maxReplicas must be at least minReplicas")
        return self


class Rollout(ApiModel):
    """Rolling update of the serving Deployment; by default no ready replica is lost."""

    max_surge: IntOrPercent = Field(
        default="25%", description="Extra pods during a rollout: a number or a percentage."
    )
    max_unavailable: IntOrPercent = Field(
        default=0, description="Pods that may be unavailable during a rollout."
    )


class Serving(ApiModel):
    """Settings of the model server."""

    max_batch_size: int = Field(
        default=64, ge=1, le=4096, description="Most rows predicted in one batched call."
    )
    max_batch_wait_ms: int = Field(
        default=2, ge=0, le=1000, description="Longest wait to fill a batch, in milliseconds."
    )
    workers: int = Field(default=1, ge=1, le=16, description="Server worker processes per pod.")


class Monitoring(ApiModel):
    """Monitoring of the served model."""

    drift: bool = Field(
        default=False,
        description="Compare live inputs with the served version's training data (the drift "
        "reference logged with it) and report drift in status.drift and the Drifted condition.",
    )
    psi_threshold: float = Field(
        default=0.2, gt=0, le=10, description="PSI at or above which a numeric feature drifted."
    )
    jensen_shannon_threshold: float = Field(
        default=0.1,
        gt=0,
        le=1,
        description="Jensen-Shannon distance (base 2, 0 the same, 1 disjoint) at or above "
        "which a categorical feature drifted.",
    )
    missing_shift_threshold: float = Field(
        default=0.1,
        gt=0,
        le=1,
        description="Change of a feature's missing rate against training (either way, as a "
        "share of rows) at or above which the feature drifted.",
    )
    unseen_share_threshold: float = Field(
        default=0.1,
        gt=0,
        le=1,
        description="Rise of a categorical feature's share of values outside its kept "
        "training categories (the 50 most frequent) at or above which the feature drifted.",
    )
    min_rows: int = Field(
        default=200,
        ge=1,
        le=1_000_000,
        description="Fewest rows in the window, over all replicas, before drift is detected, "
        "so a small sample never raises an alarm.",
    )
    window_rows: int = Field(
        default=500,
        ge=10,
        le=1_000_000,
        description="Newest rows each replica counts (each of its worker processes, with "
        "serving.workers above 1).",
    )
    window_seconds: int = Field(
        default=3600, ge=10, le=604_800, description="Oldest age of a counted row, in seconds."
    )
    check_interval_seconds: int = Field(
        default=15, ge=5, le=3600, description="How often the operator reads the replicas' counts."
    )


class ModelDeploymentSpec(ApiModel):
    """The desired state of a ModelDeployment."""

    model: ModelReference = Field(description="The registered model to serve.")
    replicas: int = Field(
        default=1, ge=0, le=100, description="Serving pods, unless autoscaling is enabled."
    )
    resources: ResourceRequirements | None = Field(
        default=None, description="Resources of each serving pod."
    )
    autoscaling: Autoscaling = Field(default_factory=Autoscaling, description="Autoscaling.")
    rollout: Rollout = Field(default_factory=Rollout, description="Rolling update settings.")
    serving: Serving = Field(default_factory=Serving, description="Model server settings.")
    poll_interval_seconds: int = Field(
        default=30, ge=5, le=3600, description="How often the alias is checked for a new version."
    )
    image: ImageReference | None = Field(default=None, description="Override of the serving image.")
    monitoring: Monitoring = Field(default_factory=Monitoring, description="Monitoring.")


class ModelDeploymentPhase(StrEnum):
    """Coarse lifecycle stage; conditions carry the details."""

    PROGRESSING = "Progressing"
    AVAILABLE = "Available"
    DEGRADED = "Degraded"
    FAILED = "Failed"


class ModelDeploymentConditionType(StrEnum):
    """Conditions a ModelDeployment reports."""

    READY = ConditionType.READY.value
    PROGRESSING = ConditionType.PROGRESSING.value
    DEGRADED = ConditionType.DEGRADED.value
    AVAILABLE = "Available"
    RUNTIME_MISMATCH = "RuntimeMismatch"
    DRIFTED = "Drifted"


class ModelRuntime(ApiModel):
    """Versions of the runtime a model was trained in; serving must match them."""

    python: str | None = Field(default=None, max_length=32, description="Python version.")
    sklearn: str | None = Field(default=None, max_length=32, description="scikit-learn version.")
    numpy: str | None = Field(default=None, max_length=32, description="NumPy version.")


class RolloutRecord(ApiModel):
    """One rollout of a model version."""

    version: int = Field(ge=1, description="Model version rolled out.")
    model_uri: str = Field(max_length=2048, description="Its model URI.")
    started_at: datetime = Field(description="When the rollout started.")
    completed_at: datetime | None = Field(default=None, description="When all replicas were ready.")


class DriftPlot(ApiModel):
    """Where the plot of a detection is: an artifact of the served version's training run."""

    run_id: str = Field(max_length=64, description="MLflow run of the served version.")
    artifact_path: str = Field(max_length=512, description="Artifact path in that run.")


class DriftStatus(ApiModel):
    """The served version's drift over the window of all its replicas."""

    version: int = Field(ge=1, description="Model version the scores are of.")
    rows: int = Field(ge=0, description="Rows in the window, over all replicas.")
    since: datetime | None = Field(
        default=None, description="Oldest time the window may hold a row of (none if empty)."
    )
    replicas: int = Field(ge=0, description="Replicas whose counts were added.")
    detected: bool = Field(description="Some feature drifted, over at least minRows rows.")
    detected_time: datetime | None = Field(
        default=None, description="When the current (or last) drift was first detected."
    )
    checked_time: datetime = Field(description="When the replicas were last read.")
    features: list[FeatureScore] = Field(
        default_factory=list, max_length=500, description="Per feature, in reference order."
    )
    plot: DriftPlot | None = Field(
        default=None, description="The reference-versus-live plot of the latest detection."
    )
    training_job_uid: str | None = Field(
        default=None,
        max_length=64,
        description="UID of the TrainingJob that produced the served version (its registry "
        "lineage tag): a TrainingJob with retrain.onDrift retrains on this drift.",
    )


class ModelDeploymentStatus(ObservedStatus):
    """Conditions: Ready, Available, Progressing, RuntimeMismatch, Degraded, Drifted."""

    phase: ModelDeploymentPhase | None = Field(default=None, description="Coarse lifecycle stage.")
    served_version: int | None = Field(
        default=None, ge=1, description="Model version the ready pods serve."
    )
    model_uri: str | None = Field(default=None, max_length=2048, description="Its model URI.")
    replicas: int | None = Field(
        default=None, ge=0, description="Serving pods (scale subresource)."
    )
    ready_replicas: int | None = Field(default=None, ge=0, description="Ready serving pods.")
    selector: str | None = Field(
        default=None, max_length=1024, description="Label selector of the pods (scale subresource)."
    )
    url: str | None = Field(
        default=None, max_length=2048, description="In-cluster URL of the model."
    )
    runtime: ModelRuntime | None = Field(default=None, description="Runtime of the served model.")
    history: list[RolloutRecord] = Field(
        default_factory=list,
        max_length=HISTORY_LIMIT,
        description=f"Rollouts, newest first, at most {HISTORY_LIMIT}.",
    )
    drift: DriftStatus | None = Field(
        default=None, description="Input drift of the served version (spec.monitoring.drift)."
    )


MODEL_DEPLOYMENT_RESOURCE = ResourceDefinition(
    names=MODEL_DEPLOYMENT,
    description="A registered model served over HTTP, rolled out when its alias moves.",
    spec=ModelDeploymentSpec,
    status=ModelDeploymentStatus,
    printer_columns=(
        PrinterColumn("Model", "string", ".spec.model.name", "Registered model name."),
        PrinterColumn("Served Version", "integer", ".status.servedVersion", "Version served."),
        PrinterColumn("Ready Replicas", "integer", ".status.readyReplicas", "Ready pods."),
        READY_COLUMN,
        AGE_COLUMN,
        PrinterColumn("Alias", "string", ".spec.model.alias", "Followed alias.", priority=1),
        PrinterColumn("URL", "string", ".status.url", "In-cluster URL.", priority=1),
    ),
    scale=ScaleSubresource(
        spec_replicas_path=".spec.replicas",
        status_replicas_path=".status.replicas",
        label_selector_path=".status.selector",
    ),
)
