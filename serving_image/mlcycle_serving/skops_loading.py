"""Loading a skops file with trust derived from the algorithm table, never from the model.

skops loads only the types it trusts: its defaults, which include every scikit-learn
estimator it finds with `sklearn.utils.all_estimators()`, and the ones the caller names.
The server names the table's `skops_trusted_types` of every allow-listed algorithm, and
narrows skops's default estimators to the table's: the allow-listed algorithms and the
trainer's preprocessing (`PIPELINE_ESTIMATORS`). A model holding anything else is refused.
Narrowing also spares the server what listing every estimator costs: importing all of
scikit-learn, about a second and 10 MiB at start-up.
"""

from __future__ import annotations

import importlib
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from mlcycle_contract.api.algorithms import ALGORITHMS, PIPELINE_ESTIMATORS


class UnsafeModel(RuntimeError):
    """The model is not a scikit-learn model in the skops format, or holds a type that the
    algorithm table does not trust: it is not loaded."""


@cache
def trusted_types() -> list[str]:
    """The types skops may load beyond its defaults: the union over the allow-listed
    algorithms of the types the table trusts for them."""
    return sorted({name for a in ALGORITHMS.values() for name in a.skops_trusted_types()})


def allowed_estimators() -> list[tuple[str, type[Any]]]:
    """(name, class) of the table's algorithms and the trainer's preprocessing."""
    paths = [*(a.estimator for a in ALGORITHMS.values()), *PIPELINE_ESTIMATORS]
    classes = []
    for path in paths:
        module, _, name = path.rpartition(".")
        classes.append((name, getattr(importlib.import_module(module), name)))
    return classes


@cache
def skops_io() -> ModuleType:
    """`skops.io`, imported while `all_estimators()` lists only the allowed estimators."""
    import sklearn.utils

    listing = sklearn.utils.all_estimators
    allowed = allowed_estimators()
    sklearn.utils.all_estimators = lambda *args, **kwargs: allowed
    try:
        return importlib.import_module("skops.io")
    finally:
        sklearn.utils.all_estimators = listing


def load_skops(path: Path) -> Any:
    """The estimator in a skops file, if it holds only types skops or the table trusts."""
    skops = skops_io()
    from skops.io.exceptions import UntrustedTypesFoundException  # after skops_io()

    try:
        return skops.load(path, trusted=trusted_types())
    except UntrustedTypesFoundException:
        # Only a refusal reads the file twice: once more to name what it holds.
        unlisted = sorted(set(skops.get_untrusted_types(file=path)) - set(trusted_types()))
        raise UnsafeModel(
            f"{path.name} holds types no allow-listed algorithm uses: {', '.join(unlisted)}"
        ) from None
    except Exception as exc:
        raise UnsafeModel(f"{path.name} is not a readable skops file: {exc}") from exc
