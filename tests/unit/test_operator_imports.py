"""The operator imports none of the model runtime: MLflow (its REST API is spoken by
mlcycle.mlflow_api), pandas, pyarrow, scipy, scikit-learn. `import mlflow` alone took about
120 MiB of the operator's resident memory (issue 13: under 300 MB)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import mlcycle

HEAVY = {"mlflow", "pandas", "pyarrow", "scipy", "sklearn"}


def test_the_operator_s_modules_import_no_model_runtime() -> None:
    modules = [m.name for m in pkgutil.walk_packages(mlcycle.__path__, "mlcycle.")]
    assert {"mlcycle.handlers", "mlcycle.__main__", "mlcycle.mlflow_api"} <= set(modules)
    code = (
        f"import importlib, sys; [importlib.import_module(m) for m in {modules!r}]; "
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {HEAVY!r}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, timeout=120)
    assert result.stdout.strip() == "[]"


# The checks a TrainingJob's spec gets before any Pod starts: hyperparameter names and values
# and a search space, against scikit-learn's rules exported as data (api.estimator_parameters).
VALIDATES = """
import sys, yaml
from mlcycle.objects import parse_training_job
from mlcycle.reconcile import search, trainingjob
from mlcycle.settings import Settings

def job(path, **spec):
    body = yaml.safe_load(open(path))
    body["metadata"].update(namespace="ml", uid="u", generation=1)
    body["spec"].update(spec)
    return parse_training_job(body)

trainingjob.check_spec(job("examples/iris/trainingjob.yaml"), Settings())
space = {"knn_classifier": {"weights": {"type": "categorical", "choices": ["uniform"]},
                            "n_neighbors": {"type": "int", "low": 1, "high": 9}}}
search.check_search(job("examples/search/trainingjob.yaml"))
search.check_search(job("examples/search/trainingjob.yaml",
                        algorithm="knn_classifier", hyperparameters={"p": 1},
                        search={"space": space}))
try:
    trainingjob.check_spec(job("examples/iris/trainingjob.yaml",
                               hyperparameters={"n_estimators": 0}), Settings())
except trainingjob.NotRunnable as refused:
    print(refused.message)
print(sorted({m.split('.')[0] for m in sys.modules} & HEAVY))
"""


def test_validating_a_training_job_and_a_search_imports_no_model_runtime() -> None:
    result = subprocess.run([sys.executable, "-c", f"HEAVY = {HEAVY!r}\n{VALIDATES}"],
                            capture_output=True, text=True, check=True, timeout=120,
                            cwd=Path(__file__).resolve().parents[2])
    refusal, heavy = result.stdout.strip().splitlines()
    assert refusal.startswith("spec.hyperparameters.n_estimators: The 'n_estimators' "
                              "parameter of RandomForestClassifier must be an int"), refusal
    assert heavy == "[]"
