"""Tiny scikit-learn models saved as MLflow models, and servers over them.

Models are trained and saved once per session (MLflow's import alone takes seconds);
requirements are pinned explicitly so saving does not spawn MLflow's inference.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
from starlette.testclient import TestClient  # noqa: E402

from mlcycle_serving.app import create_app  # noqa: E402
from mlcycle_serving.model import Model  # noqa: E402

warnings.filterwarnings("ignore", category=UserWarning)
warnings.filterwarnings("ignore", category=FutureWarning)


@pytest.fixture(autouse=True)
def _quiet_feature_name_warnings() -> None:
    # The server feeds numpy to estimators fitted on DataFrames (same column order,
    # checked at load); pytest resets the filter the model installs, so repeat it.
    warnings.filterwarnings("ignore", message="X does not have valid feature names")


def _requirements() -> list[str]:
    import sklearn

    return [f"scikit-learn=={sklearn.__version__}", f"numpy=={np.__version__}"]


TRUSTED_TREE = ["sklearn.tree._tree.Tree"]


def save_model(
    estimator: object,
    path: Path,
    features: object,
    predictions: object,
    trusted_types: list[str] | None = None,
) -> Path:
    import mlflow.sklearn
    from mlflow.models import infer_signature

    mlflow.sklearn.save_model(
        estimator,
        str(path),
        signature=infer_signature(features, predictions),
        pip_requirements=_requirements(),
        skops_trusted_types=trusted_types,
    )
    return path


@pytest.fixture(scope="session")
def iris() -> tuple[pd.DataFrame, pd.Series]:
    from sklearn.datasets import load_iris

    features, target = load_iris(return_X_y=True, as_frame=True)
    return features, target


@pytest.fixture(scope="session")
def iris_model_dir(tmp_path_factory: pytest.TempPathFactory, iris: tuple) -> Path:
    """Logistic regression fitted on a DataFrame: a signature with column names."""
    from sklearn.linear_model import LogisticRegression

    features, target = iris
    estimator = LogisticRegression(max_iter=500).fit(features, target)
    path = tmp_path_factory.mktemp("models") / "iris"
    return save_model(estimator, path, features, estimator.predict(features))


@pytest.fixture(scope="session")
def iris_tensor_model_dir(tmp_path_factory: pytest.TempPathFactory, iris: tuple) -> Path:
    """Decision tree fitted on a numpy array: a tensor signature, no names."""
    from sklearn.tree import DecisionTreeClassifier

    features, target = iris
    array = features.to_numpy()
    estimator = DecisionTreeClassifier(random_state=0).fit(array, target.to_numpy())
    path = tmp_path_factory.mktemp("models") / "iris-tensor"
    return save_model(estimator, path, array, estimator.predict(array), TRUSTED_TREE)


@pytest.fixture(scope="session")
def mixed_frame() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {
            "size": rng.normal(size=60),
            "count": rng.integers(0, 10, size=60),
            "color": rng.choice(["red", "green", "blue"], size=60),
        }
    )
    target = (frame["size"] > 0).astype(int).to_numpy()
    return frame, target


@pytest.fixture(scope="session")
def mixed_model_dir(tmp_path_factory: pytest.TempPathFactory, mixed_frame: tuple) -> Path:
    """A pipeline selecting columns by name, with a string and an integer column."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame, target = mixed_frame
    pipeline = Pipeline(
        [
            (
                "columns",
                ColumnTransformer(
                    [("onehot", OneHotEncoder(handle_unknown="ignore"), ["color"])],
                    remainder="passthrough",
                ),
            ),
            ("classifier", LogisticRegression()),
        ]
    ).fit(frame, target)
    path = tmp_path_factory.mktemp("models") / "mixed"
    return save_model(pipeline, path, frame, pipeline.predict(frame))


@pytest.fixture(scope="session")
def iris_model(iris_model_dir: Path) -> Model:
    model = Model(str(iris_model_dir), name="iris")
    model.load()
    return model


@pytest.fixture(scope="session")
def iris_tensor_model(iris_tensor_model_dir: Path) -> Model:
    model = Model(str(iris_tensor_model_dir), name="iris-tensor")
    model.load()
    return model


@pytest.fixture(scope="session")
def mixed_model(mixed_model_dir: Path) -> Model:
    model = Model(str(mixed_model_dir), name="mixed")
    model.load()
    return model


@pytest.fixture
def client(iris_model: Model) -> Iterator[TestClient]:
    with TestClient(create_app(iris_model)) as test_client:
        yield test_client


def _training_frame() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    size = 300
    frame = pd.DataFrame(
        {
            "age": rng.normal(40, 10, size).round(),
            "income": rng.normal(50_000, 12_000, size).round(),
            "city": rng.choice(["paris", "lyon", "nice"], size).astype(object),
            "plan": rng.choice(["basic", "gold"], size).astype(object),
        }
    )
    frame["churned"] = ((frame["age"] < 38) ^ (frame["plan"] == "gold")).astype(int)
    frame.loc[rng.choice(size, 40, replace=False), "age"] = np.nan
    frame.loc[rng.choice(size, 40, replace=False), "city"] = None
    return frame  # income and plan have no missing value in training


@pytest.fixture(scope="session")
def churn_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path]:
    """The trainer's own pipeline (imputers, scaling, one-hot encoding) fitted on data with
    missing numbers and missing categories, saved as the trainer saves it: skops, the
    table's trusted types, a signature inferred from the training rows."""
    import mlflow.sklearn
    import skops.io
    from mlflow.models import infer_signature

    from mlcycle_contract.api.algorithms import ALGORITHMS
    from mlcycle_contract.api.learning import Task
    from mlcycle_contract.api.trainingjob import Scaling
    from mlcycle_trainer.preprocessing import build_pipeline, features_and_target
    from mlcycle_trainer.serialization import serialize

    algorithm = ALGORITHMS["logistic_regression"]
    x, y = features_and_target(_training_frame(), "churned", Task.CLASSIFICATION)
    pipeline = build_pipeline(algorithm.estimator_class()(), x, Scaling.STANDARD, True).fit(x, y)
    data, trusted = serialize(pipeline, algorithm)
    path = tmp_path_factory.mktemp("models") / "churn"
    mlflow.sklearn.save_model(
        skops.io.loads(data, trusted=trusted),
        str(path),
        serialization_format="skops",
        skops_trusted_types=trusted,
        signature=infer_signature(x, pipeline.predict(x)),
        pip_requirements=["scikit-learn"],
    )
    return pipeline, path
