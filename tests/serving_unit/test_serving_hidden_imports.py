"""The server imports scikit-learn without pandas and runs without pyarrow
(`mlcycle_serving.hidden_imports`); a model that needs column names still gets pandas."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mlcycle_serving.hidden_imports import HiddenPackages


def test_a_hidden_package_and_its_modules_look_not_installed() -> None:
    finder = HiddenPackages("pandas")
    for name in ("pandas", "pandas.core.frame"):
        with pytest.raises(ModuleNotFoundError, match=f"does not use {name}"):
            finder.find_spec(name, None)
    assert finder.find_spec("numpy", None) is None
    assert finder.find_spec("pandasx", None) is None


def test_skops_and_scikit_learn_import_without_pandas_which_imports_after() -> None:
    script = (
        "import sys\n"
        "from mlcycle_serving.skops_loading import skops_io\n"
        "skops_io()\n"
        "assert 'sklearn.ensemble' in sys.modules and 'skops.io' in sys.modules\n"
        "assert 'pandas' not in sys.modules, 'pandas was imported'\n"
        "import pandas\n"
        "print(pandas.DataFrame({'a': [1]}).shape)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(1, 1)"
