"""The runtime a model is trained in and served in: the versions that must be the same."""

from __future__ import annotations

import platform
from importlib import metadata

RUNTIME_KEYS: tuple[str, ...] = ("python", "sklearn", "numpy")
"""What must match; each is recorded on a model version as tag `runtime.<key>`. The fields of
`api.modeldeployment.ModelRuntime`, written out so that the model server need not import the
API's models (a unit test keeps the two equal)."""

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
