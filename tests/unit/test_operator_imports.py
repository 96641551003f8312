"""The operator imports none of the model runtime: MLflow (its REST API is spoken by
mlcycle.mlflow_api), pandas, pyarrow, scipy, scikit-learn. `import mlflow` alone took about
120 MiB of the operator's resident memory (issue 13: under 300 MB)."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

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
