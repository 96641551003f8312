"""Loading a skops file with trust derived from the algorithm table, never from the model.

skops loads only the types it trusts: its defaults, and the ones the caller names. Its
defaults include every scikit-learn estimator that `sklearn.utils.all_estimators()` lists;
the server empties that list while skops imports, so that skops trusts no estimator by
itself, and names the table's types: each allow-listed algorithm's estimator and what its
fitted model holds, and the trainer's preprocessing. A model holding anything else is
refused. Listing every estimator would also cost what importing all of scikit-learn costs,
about a second at start-up; naming them imports none.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

from mlcycle_contract import model_format
from mlcycle_contract.api.algorithms import ALGORITHMS
from mlcycle_serving.hidden_imports import hidden


class UnsafeModel(RuntimeError):
    """The model is not a scikit-learn model in the skops format, or holds a type that the
    algorithm table does not trust: it is not loaded."""


@cache
def trusted_types() -> list[str]:
    """The types skops may load beyond its defaults: the union over the allow-listed
    algorithms of the types the table trusts for them."""
    return sorted({name for a in ALGORITHMS.values() for name in a.skops_trusted_types()})


@cache
def skops_io() -> ModuleType:
    """`skops.io` trusting no estimator by itself (`model_format.skops_io`), imported
    without pandas (`hidden_imports`)."""
    with hidden("pandas"):
        return model_format.skops_io()


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
