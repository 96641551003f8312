"""The served model: loaded once, predicted from many threads' worth of batches.

`Model.load()` resolves the URI, downloads the artifacts, loads the scikit-learn
estimator directly (pyfunc only for other flavors: its wrapper costs time on every
call), reads the signature and the recorded runtime, and warms the model up with
one prediction. `predict()` takes a 2-D array in signature column order.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

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
        from mlflow.models import Model as MlflowModel

        self.reference = resolve_model_uri(self.uri)
        model_dir = download_model(self.reference, self.download_dir)
        mlmodel = MlflowModel.load(str(model_dir))
        self.runtime = recorded_runtime(self.reference, model_dir, mlmodel)
        if "sklearn" in mlmodel.flavors:
            import mlflow.sklearn

            estimator = mlflow.sklearn.load_model(str(model_dir))
            self.flavor = "sklearn"
            self.input_schema = input_schema_from_signature(mlmodel.signature, estimator)
            self._predict = self._sklearn_predict_fn(estimator)
        else:
            import mlflow.pyfunc

            pyfunc_model = mlflow.pyfunc.load_model(str(model_dir))
            self.flavor = "pyfunc"
            self.input_schema = input_schema_from_signature(mlmodel.signature)
            self._uses_dataframe = self.input_schema.named
            self._predict = self._wrap_input(pyfunc_model.predict)
        self.output_spec = output_spec_from_signature(mlmodel.signature)
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
