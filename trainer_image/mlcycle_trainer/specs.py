"""The parts of the Dataset and TrainingJob specs the trainer reads (camelCase JSON).

The operator validated the custom resource already; these parsers re-check the fields the
trainer relies on, so a malformed spec fails with a message naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from mlcycle_trainer.errors import INVALID_SPEC, InvalidInput

T = TypeVar("T")

DATA_FORMATS = ("csv", "parquet")
BUILTIN_DATASETS = ("iris", "wine", "breast_cancer", "diabetes", "digits")
SCALINGS = ("none", "standard", "minmax")
GATE_OPERATORS = (">=", "<=", ">", "<")
DIRECTIONS = ("maximize", "minimize")
DEFAULT_HOLDOUT_FRACTION = 0.2


class _Fields:
    """Typed access to one JSON object of the spec; errors name the field's path."""

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, dict):
            raise InvalidInput(INVALID_SPEC, f"{path} must be an object")
        self.data: dict[str, Any] = data
        self.path = path

    def get(self, key: str, kind: type[T] | tuple[type, ...], default: T) -> T:
        value = self.data.get(key)
        if value is None:
            return default
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # JSON has one number type: accept 1 where a float is expected, never a bool.
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) and bool not in kinds:
            value = None
        if not isinstance(value, kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise InvalidInput(INVALID_SPEC, f"{self.path}.{key} must be of type {names}")
        return value  # type: ignore[return-value]

    def require(self, key: str, kind: type[T]) -> T:
        if self.data.get(key) is None:
            raise InvalidInput(INVALID_SPEC, f"{self.path}.{key} is required")
        return self.get(key, kind, kind())

    def choice(self, key: str, choices: tuple[str, ...], default: str | None) -> str | None:
        value = self.get(key, str, default)
        if value is not None and value not in choices:
            raise InvalidInput(
                INVALID_SPEC,
                f"{self.path}.{key} is {value!r}; expected one of {', '.join(choices)}",
            )
        return value

    def child(self, key: str) -> _Fields:
        return _Fields(self.data.get(key) or {}, f"{self.path}.{key}")


@dataclass(frozen=True)
class DatasetSpec:
    """Where a Dataset's data comes from and how it is shaped."""

    url: str | None
    s3: str | None
    builtin: str | None
    format: str
    target: str
    features: tuple[str, ...] | None
    profile_enabled: bool

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DatasetSpec:
        spec = _Fields(data, "spec")
        source = spec.child("source")
        url = source.get("url", str, "") or None
        s3 = source.get("s3", str, "") or None
        builtin = source.choice("builtin", BUILTIN_DATASETS, None)
        if sum(value is not None for value in (url, s3, builtin)) != 1:
            raise InvalidInput(INVALID_SPEC, "spec.source must set exactly one of url, s3, builtin")
        if url is not None and not url.lower().startswith(("http://", "https://")):
            raise InvalidInput(INVALID_SPEC, "spec.source.url must be an http:// or https:// URL")
        if s3 is not None and not s3.startswith("s3://"):
            raise InvalidInput(INVALID_SPEC, "spec.source.s3 must be an s3://bucket/key URI")
        features = spec.get("features", list, [])
        if not all(isinstance(name, str) and name.strip() for name in features):
            raise InvalidInput(INVALID_SPEC, "spec.features must be a list of column names")
        return cls(
            url=url,
            s3=s3,
            builtin=builtin,
            format=spec.choice("format", DATA_FORMATS, "csv") or "csv",
            target=spec.require("target", str).strip(),
            features=tuple(name.strip() for name in features) or None,
            profile_enabled=spec.child("profile").get("enabled", bool, True),
        )

    @property
    def source_description(self) -> str:
        return self.url or self.s3 or f"builtin:{self.builtin}"


@dataclass(frozen=True)
class Gate:
    """`metric op threshold`: a bar the model must clear."""

    metric: str
    op: str
    threshold: float

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.threshold:g}"


@dataclass(frozen=True)
class TrainingSpec:
    """What to train, how to validate it and where to register it."""

    algorithm: str
    hyperparameters: dict[str, Any]
    scaling: str
    one_hot_encode: bool
    holdout_fraction: float
    folds: int
    seed: int
    gates: tuple[Gate, ...]
    objective_metric: str | None
    model_name: str | None
    alias: str | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainingSpec:
        spec = _Fields(data, "spec")
        algorithm = spec.get("algorithm", str, "")
        if not algorithm:
            raise InvalidInput(
                INVALID_SPEC, "spec.algorithm is required (the operator runs searches as trials)"
            )
        preprocessing = spec.child("preprocessing")
        validation = spec.child("validation")
        holdout = validation.get("holdoutFraction", float, DEFAULT_HOLDOUT_FRACTION)
        if not 0.05 <= holdout <= 0.5:
            raise InvalidInput(INVALID_SPEC, "spec.validation.holdoutFraction must be in 0.05..0.5")
        folds = validation.get("folds", int, 5)
        if folds == 1 or not 0 <= folds <= 20:
            raise InvalidInput(INVALID_SPEC, "spec.validation.folds must be 0 or 2..20")
        registry = spec.child("registry")
        return cls(
            algorithm=algorithm,
            hyperparameters=dict(spec.get("hyperparameters", dict, {})),
            scaling=preprocessing.choice("scaling", SCALINGS, "standard") or "standard",
            one_hot_encode=preprocessing.get("oneHotEncode", bool, True),
            holdout_fraction=holdout,
            folds=folds,
            seed=validation.get("seed", int, 42),
            gates=tuple(
                _gate(_Fields(gate, f"spec.validation.gates[{index}]"))
                for index, gate in enumerate(validation.get("gates", list, []))
            ),
            objective_metric=spec.child("objective").get("metric", str, "") or None,
            model_name=registry.get("modelName", str, "") or None,
            alias=registry.get("alias", str, "") or None,
        )


def _gate(fields: _Fields) -> Gate:
    return Gate(
        metric=fields.require("metric", str),
        op=fields.choice("op", GATE_OPERATORS, None) or fields.require("op", str),
        threshold=fields.require("threshold", float),
    )
