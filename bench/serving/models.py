"""The two benchmark models, trained once per run and saved for all three servers.

Both are fitted on breast_cancer as a numpy array (30 unnamed float features), so
each server takes the same rows as a plain 2-D list and feeds numpy to scikit-learn:
MLflow and our server read the MLflow model (skops format, tensor signature), the
KServe server reads `model.joblib` of the same fitted estimator.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

BATCH_SIZES = (1, 100)


@dataclass(frozen=True)
class Payload:
    """`rows` feature rows and the predictions every server must return for them."""

    rows: int
    features: list[list[float]]
    expected: list[int]

    def body(self, key: str) -> bytes:
        """The JSON request body with the rows under `key` (`instances` or `inputs`)."""
        return json.dumps({key: self.features}).encode()


@dataclass(frozen=True)
class BenchModel:
    key: str
    title: str
    mlflow_dir: Path
    joblib_dir: Path
    payloads: dict[int, Payload]


def _estimators() -> dict[str, tuple[str, Any]]:
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    return {
        "rf": ("RandomForestClassifier (100 trees)", RandomForestClassifier(100, random_state=0)),
        # Unscaled features: lbfgs needs more than its default 100 iterations to converge.
        "lr": ("LogisticRegression", LogisticRegression(max_iter=10_000)),
    }


def _requirements() -> list[str]:
    from importlib import metadata

    return [f"{name}=={metadata.version(name)}" for name in ("scikit-learn", "numpy", "skops")]


def _save(estimator: Any, x: np.ndarray, mlflow_dir: Path, joblib_dir: Path) -> None:
    import joblib
    import mlflow.sklearn
    import skops.io
    from mlflow.models import infer_signature

    mlflow.sklearn.save_model(
        estimator,
        str(mlflow_dir),
        serialization_format="skops",
        skops_trusted_types=skops.io.get_untrusted_types(data=skops.io.dumps(estimator)),
        signature=infer_signature(x, estimator.predict(x)),
        pip_requirements=_requirements(),  # given, so MLflow does not infer them
    )
    joblib_dir.mkdir(parents=True)
    joblib.dump(estimator, joblib_dir / "model.joblib")


def prepare_models(work_dir: Path) -> list[BenchModel]:
    """Train both models on breast_cancer and save them under `work_dir/models`."""
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    x = np.asarray(x, dtype=np.float64)
    root = work_dir / "models"
    shutil.rmtree(root, ignore_errors=True)
    models = []
    for key, (title, estimator) in _estimators().items():
        estimator.fit(x, y)
        mlflow_dir, joblib_dir = root / key / "mlflow", root / key / "kserve"
        _save(estimator, x, mlflow_dir, joblib_dir)
        payloads = {
            rows: Payload(
                rows=rows,
                features=x[:rows].tolist(),
                expected=[int(v) for v in estimator.predict(x[:rows])],
            )
            for rows in BATCH_SIZES
        }
        models.append(BenchModel(key, title, mlflow_dir, joblib_dir, payloads))
    return models
