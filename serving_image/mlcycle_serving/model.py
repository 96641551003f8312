"""The served model: loaded once, predicted from many threads' worth of batches.

`Model.load()` resolves the URI, downloads the artifacts, refuses any format but a
scikit-learn model in the skops format (`mlcycle_contract.model_format`), loads the skops
file trusting only the types the algorithm table lists (never those the model names),
reads the signature and the recorded runtime, and warms the model up with one
prediction. No pickle, no pyfunc: nothing of the model's own code runs. `predict()` takes
a 2-D array in signature column order.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import yaml

from mlcycle_contract.model_format import (
    MLMODEL_FILE,
    SKOPS_FILE,
    unsafe_format,
    unsafe_format_message,
)
from mlcycle_serving.errors import PredictionFailed
from mlcycle_serving.model_source import (
    ModelReference,
    RuntimeVersions,
    download_model,
    recorded_runtime,
    resolve_model_uri,
)
from mlcycle_serving.schema import (
    ColumnKind,
    InputSchema,
    OutputSpec,
    input_schema_from_signature,
    output_spec_from_signature,
)
from mlcycle_serving.skops_loading import UnsafeModel, load_skops, skops_io

logger = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "model"
V2_TO_NUMPY: dict[str, str] = {
    "FP64": "float64",
    "FP32": "float32",
    "FP16": "float16",
    "INT64": "int64",
    "INT32": "int32",
    "INT16": "int16",
    "INT8": "int8",
    "BOOL": "bool",
}

PredictFn = Callable[[np.ndarray], Any]


def imputed_positions(estimator: Any, names: tuple[str, ...]) -> frozenset[int]:
    """Columns the fitted pipeline fills in when missing (NaN): a SimpleImputer first in
    the pipeline, or first in a ColumnTransformer branch that selects them."""
    from sklearn.impute import SimpleImputer

    def imputes(step: Any) -> bool:
        first = step.steps[0][1] if hasattr(step, "steps") and step.steps else step
        missing = getattr(first, "missing_values", None)
        return (
            isinstance(first, SimpleImputer) and isinstance(missing, float) and math.isnan(missing)
        )

    head = estimator.steps[0][1] if hasattr(estimator, "steps") and estimator.steps else estimator
    if imputes(head):
        return frozenset(range(len(names)))
    found: set[int] = set()
    for _, transformer, columns in getattr(head, "transformers_", ()):
        if not imputes(transformer) or not isinstance(columns, list | tuple):
            continue
        for column in columns:
            if isinstance(column, str) and column in names:
                found.add(names.index(column))
            elif isinstance(column, int) and not isinstance(column, bool):
                found.add(column)
    return frozenset(found)


def model_name_from_uri(uri: str) -> str:
    """`models:/iris@champion` -> `iris`; anything else -> `model`."""
    if uri.startswith("models:/"):
        path = uri[len("models:/") :].strip("/")
        if "/" in path or "@" in path:
            return path.split("/")[0].rsplit("@", 1)[0] or DEFAULT_MODEL_NAME
    return DEFAULT_MODEL_NAME


class Model:
    """One MLflow model, its signature, and where it came from."""

    def __init__(self, uri: str, name: str = "", download_dir: str = "") -> None:
        self.uri = uri
        self.name = name or model_name_from_uri(uri)
        self.download_dir = download_dir
        self.ready = False
        self.load_error: str | None = None
        self.flavor = ""
        self.reference = ModelReference(uri=uri, resolved_uri=uri)
        self.input_schema = InputSchema(columns=(), named=False)
        self.output_spec = OutputSpec(name="predict", v2_datatype="BYTES", shape=(-1,))
        self.runtime = RuntimeVersions(recorded={}, serving={}, requirements={})
        self.load_seconds: float | None = None
        self._predict: PredictFn | None = None
        self._uses_dataframe = False
        self._load_lock = threading.Lock()

    @property
    def version(self) -> str:
        return self.reference.version or ""

    def load(self) -> None:
        """Load the model; idempotent. Raises on failure (and records the error)."""
        with self._load_lock:
            if self.ready:
                return
            started = time.perf_counter()
            try:
                self._load()
            except Exception as exc:
                self.load_error = f"{type(exc).__name__}: {exc}"
                raise
            self.load_seconds = round(time.perf_counter() - started, 3)
            self.ready = True
            logger.info(
                "Loaded model",
                extra={
                    "model": self.name,
                    "uri": self.uri,
                    "resolved_uri": self.reference.resolved_uri,
                    "version": self.version,
                    "flavor": self.flavor,
                    "dataframe_input": self._uses_dataframe,
                    "seconds": self.load_seconds,
                    "runtime_mismatches": self.runtime.mismatches,
                },
            )
            if self.runtime.mismatches:
                logger.warning(
                    "Serving runtime differs from the model's training runtime",
                    extra={"runtime": self.runtime.as_dict()},
                )

    def _load(self) -> None:
        # Importing scikit-learn through skops is most of a cold start (scipy.stats alone is
        # about 1 s); it runs while the model downloads, which waits on the network.
        importing = threading.Thread(target=skops_io, name="import-skops", daemon=True)
        importing.start()
        self.reference = resolve_model_uri(self.uri)
        model_dir = download_model(self.reference, self.download_dir)
        importing.join()
        mlmodel = yaml.safe_load((model_dir / MLMODEL_FILE).read_text())
        problem = unsafe_format(mlmodel)
        if problem is not None:
            raise UnsafeModel(unsafe_format_message(self.reference.resolved_uri, problem))
        self.runtime = recorded_runtime(self.reference, model_dir, mlmodel)
        estimator = load_skops(model_dir / SKOPS_FILE)
        self.flavor = "sklearn"
        signature = mlmodel.get("signature")
        schema = input_schema_from_signature(signature, estimator)
        self.input_schema = schema.accepting_missing(imputed_positions(estimator, schema.names))
        self.output_spec = output_spec_from_signature(signature)
        self._predict = self._sklearn_predict_fn(estimator)
        if self.input_schema.width and self.input_schema.all_numeric:
            self.predict(np.zeros((1, self.input_schema.width)))  # warm-up

    def _sklearn_predict_fn(self, estimator: Any) -> PredictFn:
        """Feed numpy straight to the estimator unless it needs column names."""
        schema = self.input_schema
        fitted_names = getattr(estimator, "feature_names_in_", None)
        if not schema.all_numeric:
            self._uses_dataframe = True
        elif fitted_names is not None:
            if [str(n) for n in fitted_names] != list(schema.names):
                self._uses_dataframe = True  # let pandas align columns by name
            else:
                # Fitted on a DataFrame of the same columns: numpy works and is faster,
                # unless a step selects columns by name (ColumnTransformer): probe once.
                warnings.filterwarnings(
                    "ignore", message="X does not have valid feature names", category=UserWarning
                )
                try:
                    estimator.predict(np.zeros((1, len(schema.names))))
                except Exception:
                    self._uses_dataframe = True
        return self._wrap_input(estimator.predict)

    def _wrap_input(self, predict: Callable[[Any], Any]) -> PredictFn:
        if not self._uses_dataframe:
            return predict
        import pandas as pd

        names = list(self.input_schema.names)
        dtypes = [
            V2_TO_NUMPY.get(c.v2_datatype, "object")
            if c.kind is not ColumnKind.STRING
            else "object"
            for c in self.input_schema.columns
        ]
        if self.input_schema.all_numeric and len(set(dtypes)) == 1:
            dtype = dtypes[0]
            return lambda batch: predict(pd.DataFrame(batch.astype(dtype), columns=names))

        def predict_frame(batch: np.ndarray) -> Any:
            frame = pd.DataFrame(
                {name: batch[:, i].astype(dtypes[i]) for i, name in enumerate(names)}
            )
            return predict(frame)

        return predict_frame

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """Predict a 2-D batch; returns one prediction (row) per input row."""
        if self._predict is None:
            raise PredictionFailed(f"model {self.name!r} is not loaded")
        try:
            raw = self._predict(batch)
        except Exception as exc:
            raise PredictionFailed(f"prediction failed: {type(exc).__name__}: {exc}") from exc
        result = np.asarray(raw.to_numpy() if hasattr(raw, "to_numpy") else raw)
        if result.ndim == 0 or result.shape[0] != batch.shape[0]:
            raise PredictionFailed(
                f"model returned {result.shape} predictions for {batch.shape[0]} rows"
            )
        return result

    def describe(self) -> dict[str, Any]:
        """Name, version and origin, for /version and logs."""
        return {
            "name": self.name,
            "uri": self.uri,
            "resolved_uri": self.reference.resolved_uri,
            "registered_name": self.reference.registered_name,
            "version": self.reference.version,
            "alias": self.reference.alias,
            "run_id": self.reference.run_id,
            "flavor": self.flavor,
            "ready": self.ready,
        }
