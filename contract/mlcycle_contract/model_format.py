"""The one model format mlcycle serves: a scikit-learn model in the skops format.

A registered version is an MLflow model directory; its MLmodel file says how it was saved.
The operator judges that file before it rolls a version out, and the model server again
before it loads one: anything but the scikit-learn flavor in the skops format (a pickle or
cloudpickle file, a pyfunc whose loader runs the model's own Python code, another flavor)
is refused with `UNSAFE_MODEL_FORMAT`. Nothing else in the file is trusted: the server
reads `SKOPS_FILE` with skops and the types the algorithm table lists, never the
`skops_trusted_types` the model records for itself.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from functools import cache
from types import ModuleType
from typing import Any

UNSAFE_MODEL_FORMAT = "UnsafeModelFormat"
MLMODEL_FILE = "MLmodel"
SKOPS_FILE = "model.skops"
SERVED_FORMAT = f"the scikit-learn flavor in the skops format ({SKOPS_FILE})"


def unsafe_format(mlmodel: Any) -> str | None:
    """None for a scikit-learn model saved with skops; else what was found instead."""
    flavors = mlmodel.get("flavors") if isinstance(mlmodel, Mapping) else None
    if not isinstance(flavors, Mapping) or not flavors:
        return f"an {MLMODEL_FILE} file without flavors"
    sklearn = flavors.get("sklearn")
    if not isinstance(sklearn, Mapping):
        pyfunc = flavors.get("python_function")
        loader = pyfunc.get("loader_module") if isinstance(pyfunc, Mapping) else None
        found = f"flavors {', '.join(sorted(map(str, flavors)))}"
        if loader:
            found += f" (a pyfunc loaded by {loader}, which runs the model's own code)"
        return found
    serialization = sklearn.get("serialization_format")
    if serialization != "skops":
        return f"a scikit-learn model serialized with {serialization or 'an unnamed format'}"
    if sklearn.get("pickled_model") != SKOPS_FILE:
        return f"a scikit-learn model in {sklearn.get('pickled_model')!r}, not {SKOPS_FILE}"
    return None


def unsafe_format_message(model: str, problem: str) -> str:
    """The refusal a condition or a log line carries."""
    return f"{model} is {problem}; only {SERVED_FORMAT} is served"


@cache
def skops_io() -> ModuleType:
    """`skops.io`, imported while scikit-learn's `all_estimators()` lists nothing: skops then
    trusts no estimator by itself, and a model loads only with the types its caller names
    (the algorithm table's), in the trainer as in the model server. Listing every estimator
    would also import every module of scikit-learn: about 0.3 s of a training run, a second
    of a cold start."""
    import sklearn.utils

    listing = sklearn.utils.all_estimators
    sklearn.utils.all_estimators = lambda *args, **kwargs: []
    try:
        return importlib.import_module("skops.io")
    finally:
        sklearn.utils.all_estimators = listing
