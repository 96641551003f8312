"""The runtime a model is trained in and served in: the versions that must be the same."""

from __future__ import annotations

import platform
from importlib import metadata

from mlcycle_contract.api.modeldeployment import ModelRuntime

RUNTIME_KEYS: tuple[str, ...] = tuple(ModelRuntime.model_fields)
"""What must match; each is recorded on a model version as tag `runtime.<key>`."""

# Runtime key -> the distribution whose version it is (and its name in requirements.txt).
DISTRIBUTIONS = {"sklearn": "scikit-learn", "numpy": "numpy", "mlflow": "mlflow"}


def current_runtime() -> dict[str, str]:
    """This process's Python and model packages (those installed), keyed like the tags."""
    versions = {"python": platform.python_version()}
    for key, distribution in DISTRIBUTIONS.items():
        try:
            versions[key] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    return versions
