"""Fields the API declares and this operator does not implement yet.

A spec that sets one is refused (`Ready=False`, reason `Unsupported`) before any child object
exists: nothing is accepted and then silently ignored. A field comes off these lists when an
end-to-end test proves its whole path (`tests/e2e/test_continuous.py` for refreshInterval,
schedule and onNewData, `tests/e2e/test_search_triggers.py` for them on a search). None is
left today: each list below is where a field declared ahead of its implementation goes.
"""

from __future__ import annotations

from mlcycle_contract.api.dataset import DatasetSpec
from mlcycle_contract.api.modeldeployment import ModelDeploymentSpec
from mlcycle_contract.api.trainingjob import TrainingJobSpec

REASON = "Unsupported"


def dataset_unsupported(spec: DatasetSpec) -> list[str]:
    """The wire paths of the unsupported fields this spec sets: none left."""
    return []


def training_job_unsupported(spec: TrainingJobSpec) -> list[str]:
    """None left: the automatic triggers on a search are proven by
    tests/e2e/test_search_triggers.py."""
    return []


def model_deployment_unsupported(spec: ModelDeploymentSpec) -> list[str]:
    """None left: spec.monitoring.drift is proven by tests/e2e/test_drift.py."""
    return []


def unsupported_message(paths: list[str]) -> str:
    """One `<path>: not supported yet ...` per field, so the message names each of them."""
    return "; ".join(f"{path}: not supported yet by this version of the operator; remove it"
                     for path in paths)
