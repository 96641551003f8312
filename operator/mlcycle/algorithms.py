"""Semantic checks of a TrainingJob's hyperparameters, before any Job exists.

The check itself lives with the algorithm table in `mlcycle_contract.api.algorithms`; this
module goes once the reconciler calls it there.
"""

from __future__ import annotations

from typing import Any

from mlcycle_contract.api import algorithms
from mlcycle_contract.api.learning import Algorithm


def hyperparameter_problem(algorithm: Algorithm, hyperparameters: dict[str, Any]) -> str | None:
    """None when scikit-learn accepts the hyperparameters; else a message naming the field."""
    return algorithms.hyperparameter_problem(algorithms.ALGORITHMS[algorithm], hyperparameters)
