"""Packages the server keeps out of its process, or out of one import, to start faster.

- pyarrow, always: pandas imports it whenever it is installed (about 35 MiB and 0.3 s), and
  the server never uses Arrow: requests become numpy arrays or plain DataFrames.
- pandas, while scikit-learn and skops import: `sklearn.utils.fixes` imports it whenever it
  is installed (about 0.35 s of a cold start), for a helper the server never calls. Only a
  model that needs column names uses pandas, and `Model` imports it then.
"""

from __future__ import annotations

import importlib.abc
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib.machinery import ModuleSpec
from types import ModuleType


class HiddenPackages(importlib.abc.MetaPathFinder):
    """Makes the named top-level packages look not installed."""

    def __init__(self, *packages: str) -> None:
        self.packages = frozenset(packages)

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname.partition(".")[0] in self.packages:
            raise ModuleNotFoundError(f"the model server does not use {fullname}", name=fullname)
        return None


ARROW = HiddenPackages("pyarrow")


def leave_out_arrow() -> None:
    """Before anything imports pandas: the server process runs without pyarrow."""
    if ARROW not in sys.meta_path:
        sys.meta_path.insert(0, ARROW)


@contextmanager
def hidden(*packages: str) -> Iterator[None]:
    """Within the block, importing `packages` fails as if they were not installed (an
    import that already happened is unaffected)."""
    finder = HiddenPackages(*packages)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
