"""The TrainingJob kind: one training run or hyperparameter search on a pinned Dataset version."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import ConfigDict, Field, model_validator

from mlcycle_contract.api.common import (
    ApiModel,
    CelRule,
    ConditionType,
    CronSchedule,
    Duration,
    FreeFormObject,
    ImageReference,
    ModelAlias,
    ModelName,
    ObjectName,
    ObservedStatus,
    ResourceRequirements,
    cel_list,
    cel_rules,
)
from mlcycle_contract.api.evaluation import ChampionScores, Objective, ValidationSpec
from mlcycle_contract.api.learning import (
    CLASSIFICATION_METRICS,
    CLASSIFIERS,
    DEFAULT_METRIC,
    MINIMIZED_METRICS,
    Algorithm,
    Metric,
    Task,
    algorithm_task,
    gate_metric_task,
    metric_direction,
    metric_task,
)
from mlcycle_contract.api.resource import AGE_COLUMN, PrinterColumn, ResourceDefinition
from mlcycle_contract.api.search import (
    LEADERBOARD_SIZE,
    SearchProgress,
    SearchSpec,
    TrialSummary,
)
from mlcycle_contract.constants import TRAINING_JOB

_CLASSIFIERS = cel_list(sorted(CLASSIFIERS))
_CLASSIFICATION_METRICS = cel_list(sorted(CLASSIFICATION_METRICS))
_PREDICTIVE_METRICS = cel_list([metric.value for metric in Metric])
_MINIMIZED = cel_list(sorted(MINIMIZED_METRICS))
# The best value each objective can reach: a minimized metric 0, the others 1.
GOAL_MESSAGE = ("search.goal can never be reached: log_loss, rmse and mae are at least 0 "
                "(minimized), the other metrics at most 1 (maximized)")


def _for_each_candidate(predicate: str) -> str:
    """CEL: `predicate` (over `{a}`) holds for spec.algorithm or every search.algorithms entry."""
    return (
        f"(has(self.algorithm) ? ({predicate.format(a='self.algorithm')}) : "
        f"(!has(self.search) || !has(self.search.algorithms) || "
        f"self.search.algorithms.all(a, {predicate.format(a='a')})))"
    )


class DatasetReference(ApiModel):
    """The Dataset to train on, optionally pinned to one version."""

    name: ObjectName = Field(description="Name of the Dataset in the same namespace.")
    version: str | None = Field(
        default=None, max_length=64, description="Dataset version to use; the current one if unset."
    )


class Scaling(StrEnum):
    """Scaling of numeric features."""

    NONE = "none"
    STANDARD = "standard"
    MINMAX = "minmax"


class Preprocessing(ApiModel):
    """Feature preprocessing steps of the pipeline, fit on training data only."""

    scaling: Scaling = Field(default=Scaling.STANDARD, description="Numeric feature scaling.")
    one_hot_encode: bool = Field(default=True, description="One-hot encode categorical columns.")


class RegistrySpec(ApiModel):
    """Where the trained model is registered in MLflow."""

    model_name: ModelName | None = Field(
        default=None, description="Registered model name; the TrainingJob's name when unset."
    )
    alias: ModelAlias | None = Field(
        default=None,
        description="Alias moved to the new version when all gates pass, e.g. champion.",
    )


RUNS_LIMIT = 30
CHAMPION_NEEDS_ALIAS = (
    "a gate with baseline champion compares with the version registry.alias points at: "
    "set registry.alias"
)


class RetrainTriggers(ApiModel):
    """What starts a new training run by itself, and the limits on such runs."""

    on_new_data: bool = Field(
        default=False,
        description="Retrain when the Dataset gets a new version (unless datasetRef.version "
        "pins one).",
    )
    on_drift: bool = Field(
        default=False,
        description="Retrain when a ModelDeployment with monitoring.drift, serving a model "
        "version this TrainingJob produced (its registry lineage tag), reports drift.",
    )
    min_interval: Duration | None = Field(
        default=None,
        description="Cooldown: no automatic run starts sooner than this after the last run "
        "started, e.g. 1h; a trigger held back is an Event, and new data waits for the end "
        "of the cooldown.",
    )
    max_runs_per_day: int | None = Field(
        default=None, ge=1, le=RUNS_LIMIT,
        description="At most this many runs start in any 24 hours (automatic runs are held "
        f"back beyond it); at most {RUNS_LIMIT}, the runs status.runs keeps.",
    )


class ConcurrencyPolicy(StrEnum):
    """What a new run does while another runs (as CronJob's): wait or be skipped (Forbid,
    for automatic triggers), or delete the running one (Replace)."""

    FORBID = "Forbid"
    REPLACE = "Replace"


class RunTrigger(StrEnum):
    """What started a run."""

    CREATED = "Created"
    SPEC_CHANGED = "SpecChanged"
    MANUAL = "Manual"
    SCHEDULE = "Schedule"
    NEW_DATA = "NewData"
    DRIFT = "Drift"


class TrainingJobSpec(ApiModel):
    """The desired state of a TrainingJob."""

    model_config = ConfigDict(
        json_schema_extra=cel_rules(
            CelRule(
                rule="has(self.algorithm) != (has(self.search) && has(self.search.algorithms))",
                message="set exactly one of algorithm and search.algorithms",
            ),
            CelRule(
                rule="!has(self.task) || "
                + _for_each_candidate(
                    f"({{a}} in {_CLASSIFIERS}) == (self.task == 'classification')"
                ),
                message="task does not match the algorithm",
                field_path=".task",
            ),
            CelRule(
                rule="!has(self.objective) || "
                + _for_each_candidate(
                    f"({{a}} in {_CLASSIFIERS}) == "
                    f"(self.objective.metric in {_CLASSIFICATION_METRICS})"
                ),
                message="objective.metric does not fit the algorithm's task",
                field_path=".objective.metric",
            ),
            CelRule(
                rule="!has(self.validation) || !has(self.validation.gates) || "
                f"self.validation.gates.all(g, !(g.metric in {_PREDICTIVE_METRICS}) || "
                + _for_each_candidate(
                    f"({{a}} in {_CLASSIFIERS}) == (g.metric in {_CLASSIFICATION_METRICS})"
                )
                + ")",
                message="a gate's metric does not fit the algorithm's task",
                field_path=".validation.gates",
            ),
            CelRule(
                rule="!has(self.search) || !has(self.search.space) || self.search.space.all(k, "
                "has(self.algorithm) ? k == self.algorithm : "
                "(has(self.search.algorithms) && k in self.search.algorithms))",
                message="search.space may only name the algorithms being trained",
                field_path=".search.space",
            ),
            CelRule(
                rule="!has(self.validation) || !has(self.validation.gates) || "
                "self.validation.gates.all(g, !has(g.baseline)) || "
                "(has(self.registry) && has(self.registry.alias))",
                message=CHAMPION_NEEDS_ALIAS,
                field_path=".registry.alias",
            ),
            CelRule(
                rule="!has(self.timeZone) || has(self.schedule)",
                message="timeZone applies to schedule; set schedule or remove timeZone",
                field_path=".timeZone",
            ),
            CelRule(
                rule="!has(self.search) || !has(self.search.goal) || "
                f"((has(self.objective) && self.objective.metric in {_MINIMIZED}) ? "
                "self.search.goal >= 0.0 : self.search.goal <= 1.0)",
                message=GOAL_MESSAGE,
                field_path=".search.goal",
            ),
        )
    )

    dataset_ref: DatasetReference = Field(description="The Dataset to train on.")
    algorithm: Algorithm | None = Field(
        default=None, description="Estimator to train; unset for AutoML (search.algorithms)."
    )
    task: Task | None = Field(
        default=None, description="classification or regression; follows from the algorithm."
    )
    hyperparameters: FreeFormObject = Field(
        default_factory=dict,
        description="Estimator parameters, e.g. {n_estimators: 200}, checked by the operator. "
        "The apiserver drops null values: an omitted parameter keeps the estimator's default.",
    )
    preprocessing: Preprocessing = Field(
        default_factory=Preprocessing, description="Feature preprocessing."
    )
    objective: Objective | None = Field(
        default=None, description="Metric that ranks models; accuracy or r2 when unset."
    )
    validation: ValidationSpec = Field(
        default_factory=ValidationSpec, description="Evaluation and gates."
    )
    search: SearchSpec | None = Field(
        default=None,
        description="Hyperparameter search / AutoML: trials in worker Pods, then the best "
        "configuration trained, validated and registered once.",
    )
    registry: RegistrySpec = Field(default_factory=RegistrySpec, description="MLflow registration.")
    resources: ResourceRequirements | None = Field(
        default=None, description="Resources of each training or trial pod."
    )
    schedule: CronSchedule | None = Field(
        default=None,
        description="Cron schedule for periodic retraining, e.g. '0 3 * * *' (five fields, "
        "or @hourly, @daily, @weekly, @monthly, @yearly), in timeZone. A fire while a run "
        "runs (concurrencyPolicy Forbid) or a limit holds is skipped, with an Event.",
    )
    time_zone: str | None = Field(
        default=None, min_length=1, max_length=64,
        description="IANA time zone of the schedule, e.g. Europe/Berlin; UTC when unset.",
    )
    concurrency_policy: ConcurrencyPolicy = Field(
        default=ConcurrencyPolicy.FORBID,
        description="Forbid: an automatic trigger waits (new data) or is skipped (a schedule "
        "fire) while a run runs, and a run a spec change or manual request starts leaves the "
        "running one to finish, unreported (Superseded). Replace: any new run (a trigger, a "
        "manual request, a spec change) first deletes the running run's Job and its Pods; "
        "that run is recorded as Replaced, with a RunReplaced Event. A search's new study "
        "(each run a trigger starts is one) stops the earlier study's Jobs under either "
        "policy, and records that run as Replaced.",
    )
    retrain: RetrainTriggers = Field(
        default_factory=RetrainTriggers, description="Automatic retraining triggers."
    )
    image: ImageReference | None = Field(default=None, description="Override of the trainer image.")
    backoff_limit: int = Field(default=1, ge=0, le=10, description="Retries of a failed pod.")
    active_deadline_seconds: int | None = Field(
        default=None, ge=1, description="Time limit of each training or trial Job."
    )

    @property
    def candidate_algorithms(self) -> list[Algorithm]:
        """spec.algorithm, or the AutoML candidates."""
        if self.algorithm is not None:
            return [self.algorithm]
        return list(self.search.algorithms or []) if self.search is not None else []

    @property
    def effective_task(self) -> Task:
        """The declared task, or the one the algorithm(s) solve."""
        return self.task or algorithm_task(self.candidate_algorithms[0])

    @property
    def effective_objective(self) -> Objective:
        """The declared objective with its direction filled in, or the task's default."""
        metric = self.objective.metric if self.objective else DEFAULT_METRIC[self.effective_task]
        return Objective(metric=metric, direction=metric_direction(metric))

    @model_validator(mode="after")
    def _consistent(self) -> TrainingJobSpec:
        automl = self.search is not None and self.search.algorithms is not None
        if (self.algorithm is not None) == automl:
            raise ValueError("set exactly one of algorithm and search.algorithms")
        task = algorithm_task(self.candidate_algorithms[0])
        if self.task is not None and self.task != task:
            raise ValueError("task does not match the algorithm")
        if self.objective is not None and metric_task(self.objective.metric) != task:
            raise ValueError("objective.metric does not fit the algorithm's task")
        if any(gate_metric_task(gate.metric) not in (None, task) for gate in self.validation.gates):
            raise ValueError("a gate's metric does not fit the algorithm's task")
        space = self.search.space if self.search is not None else None
        if space is not None and not set(space) <= set(self.candidate_algorithms):
            raise ValueError("search.space may only name the algorithms being trained")
        if self.hyperparameters and self.algorithm is None:
            raise ValueError("hyperparameters apply to spec.algorithm; for AutoML use search.space")
        if self.registry.alias is None and any(g.baseline for g in self.validation.gates):
            raise ValueError(CHAMPION_NEEDS_ALIAS)
        if self.time_zone is not None and self.schedule is None:
            raise ValueError("timeZone applies to schedule; set schedule or remove timeZone")
        goal = self.search.goal if self.search is not None else None
        if goal is not None and (
            goal < 0 if self.effective_objective.metric in MINIMIZED_METRICS else goal > 1
        ):
            raise ValueError(GOAL_MESSAGE)
        return self


class TrainingJobPhase(StrEnum):
    """Coarse lifecycle stage; conditions carry the details."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class TrainingJobConditionType(StrEnum):
    """Conditions a TrainingJob reports."""

    READY = ConditionType.READY.value
    VALIDATED = "Validated"
    REGISTERED = "Registered"
    DRIFT_MONITORED = "DriftMonitored"


class ObjectiveValue(ApiModel):
    """The objective metric of the best model so far."""

    metric: Metric = Field(description="Objective metric.")
    value: float = Field(description="Its value on held-out data.")


class RegisteredModelVersion(ApiModel):
    """The model version registered in MLflow by the last successful run."""

    name: ModelName = Field(description="Registered model name.")
    version: int = Field(ge=1, description="Model version.")
    uri: str = Field(max_length=2048, description="Model URI, models:/<name>/<version>.")


class MlflowRun(ApiModel):
    """The MLflow run of the last run (the parent run of a search)."""

    run_id: str = Field(max_length=64, description="MLflow run id.")
    run_url: str | None = Field(
        default=None, max_length=2048, description="Link to the run in the UI."
    )
    experiment_id: str | None = Field(
        default=None, max_length=64, description="MLflow experiment id."
    )


class RunPhase(StrEnum):
    """Where a run stands."""

    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SUPERSEDED = "Superseded"
    REPLACED = "Replaced"


class RunRecord(ApiModel):
    """One training run of the TrainingJob."""

    number: int = Field(ge=1, description="Run number, counting from 1.")
    trigger: RunTrigger = Field(description="What started it.")
    reason: str = Field(max_length=512, description="Why, in words.")
    phase: RunPhase = Field(description="Where it stands.")
    job_name: str = Field(
        max_length=63,
        description="Its training Job (a search's: the one that trains its best trial).",
    )
    generation: int = Field(ge=0, description="metadata.generation it ran.")
    request: str = Field(
        default="", max_length=256,
        description="The retraining request annotation in force when it started.",
    )
    dataset_version: str | None = Field(
        default=None, max_length=64, description="Dataset version it trained on."
    )
    model_version: int | None = Field(default=None, ge=1, description="Version it registered.")
    gates_passed: bool | None = Field(default=None, description="Whether every gate held.")
    start_time: datetime = Field(description="When it started.")
    completion_time: datetime | None = Field(default=None, description="When it ended.")


class HeldTrigger(ApiModel):
    """An automatic trigger a limit holds back."""

    trigger: RunTrigger = Field(description="The trigger.")
    reason: str = Field(max_length=64, description="The limit: Cooldown, DailyLimit, Running.")
    message: str = Field(max_length=1024, description="Which limit, until when.")
    since: datetime = Field(description="Held back since.")


class TrainingJobStatus(ObservedStatus):
    """The observed state, written by the operator. Conditions: Ready, Validated, Registered."""

    phase: TrainingJobPhase | None = Field(default=None, description="Coarse lifecycle stage.")
    start_time: datetime | None = Field(default=None, description="When the current run started.")
    completion_time: datetime | None = Field(default=None, description="When it finished.")
    dataset_version: str | None = Field(
        default=None, max_length=64, description="Dataset version the run trained on."
    )
    job_name: str | None = Field(default=None, max_length=63, description="The training Job.")
    metrics: dict[str, float] | None = Field(
        default=None, max_length=100, description="Metrics of the best model (holdout, cv, timing)."
    )
    objective: ObjectiveValue | None = Field(
        default=None, description="Objective of the best model."
    )
    model: RegisteredModelVersion | None = Field(default=None, description="Registered model.")
    champion: ChampionScores | None = Field(
        default=None,
        description="The champion the last model was compared with (gates with a baseline).",
    )
    mlflow: MlflowRun | None = Field(default=None, description="MLflow run.")
    study: str | None = Field(
        default=None, max_length=64,
        description="The search's study; a new one when the space, algorithms or data change, "
        "and for each run a manual request or a trigger starts.",
    )
    progress: SearchProgress | None = Field(default=None, description="Trials of the study.")
    best_trial: TrialSummary | None = Field(default=None, description="The best trial so far.")
    leaderboard: list[TrialSummary] | None = Field(
        default=None, max_length=LEADERBOARD_SIZE, description="The best trials, best first."
    )
    runs: list[RunRecord] = Field(
        default_factory=list, max_length=RUNS_LIMIT,
        description=f"Training runs, newest first, at most {RUNS_LIMIT}.",
    )
    last_schedule_time: datetime | None = Field(
        default=None, description="spec.schedule: the last fire time handled (started or "
        "skipped); the next fire comes after it.",
    )
    held_back: list[HeldTrigger] = Field(
        default_factory=list, max_length=2,
        description="Automatic triggers a limit holds back now (empty when none).",
    )


TRAINING_JOB_RESOURCE = ResourceDefinition(
    names=TRAINING_JOB,
    description="A training run or hyperparameter search on a Dataset, registered in MLflow.",
    spec=TrainingJobSpec,
    status=TrainingJobStatus,
    printer_columns=(
        PrinterColumn("Phase", "string", ".status.phase", "Lifecycle stage."),
        PrinterColumn("Metric", "string", ".status.objective.metric", "Objective metric."),
        PrinterColumn("Value", "number", ".status.objective.value", "Objective of the best model."),
        PrinterColumn("Model Version", "integer", ".status.model.version", "Registered version."),
        PrinterColumn("Trials", "string", ".status.progress.trials", "Search: finished/total."),
        AGE_COLUMN,
        PrinterColumn("Algorithm", "string", ".spec.algorithm", "Estimator.", priority=1),
        PrinterColumn(
            "Dataset Version", "string", ".status.datasetVersion", "Trained on.", priority=1
        ),
        PrinterColumn("Run", "integer", ".status.runs[0].number", "Latest run.", priority=1),
        PrinterColumn("Trigger", "string", ".status.runs[0].trigger", "What started it.",
                      priority=1),
    ),
)
