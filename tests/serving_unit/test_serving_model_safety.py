"""The server loads a scikit-learn model in the skops format only, trusting the types the
algorithm table lists: never a pickle, a pyfunc, or the trusted types a model names."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from mlcycle_contract.api.algorithms import ALGORITHMS
from mlcycle_contract.model_format import unsafe_format
from mlcycle_serving.model import Model
from mlcycle_serving.skops_loading import UnsafeModel, trusted_types


def _iris_estimator(iris: tuple[pd.DataFrame, pd.Series]) -> Any:
    from sklearn.linear_model import LogisticRegression

    features, target = iris
    return LogisticRegression(max_iter=500).fit(features, target)


def _refusal(path: Path) -> str:
    model = Model(str(path), name="refused")
    with pytest.raises(UnsafeModel) as refused:
        model.load()
    assert not model.ready
    assert model._predict is None
    return str(refused.value)


@pytest.mark.parametrize("serialization", ["pickle", "cloudpickle"])
def test_a_pickled_scikit_learn_model_is_refused(
    tmp_path: Path, iris: tuple[pd.DataFrame, pd.Series], serialization: str
) -> None:
    import mlflow.sklearn

    mlflow.sklearn.save_model(
        _iris_estimator(iris),
        str(tmp_path / "model"),
        serialization_format=serialization,
        pip_requirements=["scikit-learn"],
    )
    message = _refusal(tmp_path / "model")
    assert f"a scikit-learn model serialized with {serialization}" in message
    assert "only the scikit-learn flavor in the skops format (model.skops) is served" in message


def test_a_pyfunc_is_refused_and_its_code_never_runs(tmp_path: Path) -> None:
    import mlflow.pyfunc

    marker = tmp_path / "load_context-ran"

    class WritesAMarker(mlflow.pyfunc.PythonModel):  # type: ignore[misc]
        def load_context(self, context):  # type: ignore[no-untyped-def]
            Path(os.environ["H12S_MARKER"]).write_text("code from the registry ran")

        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
            return model_input

    mlflow.pyfunc.save_model(
        str(tmp_path / "pyfunc"), python_model=WritesAMarker(), pip_requirements=["pandas"]
    )
    os.environ["H12S_MARKER"] = str(marker)
    try:
        message = _refusal(tmp_path / "pyfunc")
    finally:
        del os.environ["H12S_MARKER"]
    assert "a pyfunc loaded by mlflow.pyfunc.model" in message
    assert not marker.exists()


def test_types_the_model_trusts_itself_are_not_trusted(tmp_path: Path) -> None:
    """A skops file holding `os.system`, which its MLmodel lists as trusted: refused."""
    import mlflow.sklearn
    import skops.io
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    pipeline = Pipeline([("run", FunctionTransformer(os.system))])
    untrusted = skops.io.get_untrusted_types(data=skops.io.dumps(pipeline))
    assert untrusted == ["posix.system"]
    mlflow.sklearn.save_model(
        pipeline,
        str(tmp_path / "model"),
        serialization_format="skops",
        skops_trusted_types=untrusted,
        pip_requirements=["scikit-learn"],
    )
    recorded = yaml.safe_load((tmp_path / "model" / "MLmodel").read_text())
    assert recorded["flavors"]["sklearn"]["skops_trusted_types"] == ["posix.system"]
    assert unsafe_format(recorded) is None  # the format is right: the content is not
    message = _refusal(tmp_path / "model")
    assert "holds types no allow-listed algorithm uses:" in message
    assert "posix.system" in message


def test_the_trusted_types_are_the_algorithm_tables() -> None:
    expected = {t for a in ALGORITHMS.values() for t in a.skops_trusted_types()}
    assert set(trusted_types()) == expected
    assert "sklearn.tree._tree.Tree" in expected
    assert "posix.system" not in expected


def test_a_random_forest_loads_with_the_tables_types(tmp_path: Path) -> None:
    """The table's types (a tree's `Tree`) are enough; the MLmodel's own list is ignored."""
    import mlflow.sklearn
    from sklearn.ensemble import RandomForestClassifier

    x = np.random.default_rng(0).normal(size=(40, 3))
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(x, x[:, 0] > 0)
    mlflow.sklearn.save_model(
        forest,
        str(tmp_path / "forest"),
        serialization_format="skops",
        skops_trusted_types=["sklearn.tree._tree.Tree"],
        pip_requirements=["scikit-learn"],
    )
    mlmodel_file = tmp_path / "forest" / "MLmodel"
    mlmodel = yaml.safe_load(mlmodel_file.read_text())
    mlmodel["flavors"]["sklearn"]["skops_trusted_types"] = None
    mlmodel_file.write_text(yaml.safe_dump(mlmodel))
    model = Model(str(tmp_path / "forest"), name="forest")
    model.load()
    assert model.predict(x[:4]).tolist() == forest.predict(x[:4]).tolist()


@pytest.mark.parametrize(
    ("mlmodel", "found"),
    [
        (None, "an MLmodel file without flavors"),
        ({"flavors": {}}, "an MLmodel file without flavors"),
        ({"flavors": {"xgboost": {}}}, "flavors xgboost"),
        (
            {"flavors": {"sklearn": {"serialization_format": "skops", "pickled_model": "x.pkl"}}},
            "a scikit-learn model in 'x.pkl', not model.skops",
        ),
        ({"flavors": {"sklearn": {}}}, "a scikit-learn model serialized with an unnamed format"),
    ],
)
def test_unsafe_formats_are_named(mlmodel: Any, found: str) -> None:
    assert unsafe_format(mlmodel) == found


@pytest.mark.parametrize("scaling", ["none", "standard", "minmax"])
@pytest.mark.parametrize("one_hot_encode", [True, False])
def test_every_pipeline_the_trainer_builds_loads(
    tmp_path: Path, scaling: str, one_hot_encode: bool
) -> None:
    """skops trusts the table's estimators and the trainer's preprocessing: every option."""
    import skops.io

    from mlcycle_contract.api.trainingjob import Scaling
    from mlcycle_serving.skops_loading import load_skops
    from mlcycle_trainer.preprocessing import build_pipeline

    x = pd.DataFrame({"size": [1.0, np.nan, 3.0, 4.0], "color": ["a", "b", None, "a"]})
    for algorithm in ("random_forest_classifier", "logistic_regression"):
        estimator = ALGORITHMS[algorithm].estimator_class()()
        pipeline = build_pipeline(estimator, x, Scaling(scaling), one_hot_encode)
        pipeline.fit(x, [0, 1, 0, 1])
        skops.io.dump(pipeline, tmp_path / "model.skops")
        loaded = load_skops(tmp_path / "model.skops")
        assert loaded.predict(x).tolist() == pipeline.predict(x).tolist()


def test_an_estimator_outside_the_table_is_refused_by_a_fresh_server_process(
    tmp_path: Path,
) -> None:
    """skops's default trust is narrowed as the server imports it first (this test process
    imported skops already, hence a fresh interpreter, like the server's)."""
    import skops.io
    from sklearn.svm import LinearSVC

    x = np.random.default_rng(0).normal(size=(20, 2))
    skops.io.dump(LinearSVC().fit(x, x[:, 0] > 0), tmp_path / "model.skops")
    code = (
        "import sys; from pathlib import Path; "
        "from mlcycle_serving.skops_loading import UnsafeModel, load_skops\n"
        "try: load_skops(Path(sys.argv[1]))\n"
        "except UnsafeModel as refused: print(refused)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "model.skops")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert "holds types no allow-listed algorithm uses: sklearn.svm._classes.LinearSVC" in (
        done.stdout
    ), done.stdout + done.stderr
