"""The fitted pipeline in the skops format, and the types its loader must trust.

skops refuses to load types it does not trust by default; MLflow records the trusted ones
in the MLmodel file, and the model server loads nothing else. Those are the types the
algorithm table lists for the algorithm: a model holding any other type is refused.
"""

from __future__ import annotations

import skops.io
from sklearn.pipeline import Pipeline

from mlcycle_contract.api.algorithms import AlgorithmDefinition
from mlcycle_trainer.errors import MODEL_NOT_SERIALIZABLE, InvalidInput, name_list


def serialize(pipeline: Pipeline, algorithm: AlgorithmDefinition) -> tuple[bytes, list[str]]:
    """The skops bytes of the pipeline and the types to trust when loading it."""
    data: bytes = skops.io.dumps(pipeline)
    trusted = algorithm.skops_trusted_types()
    unlisted = sorted(set(skops.io.get_untrusted_types(data=data)) - set(trusted))
    if unlisted:
        raise InvalidInput(
            MODEL_NOT_SERIALIZABLE,
            f"the fitted {algorithm.name} holds types that skops does not trust and the "
            f"algorithm table does not list: {name_list(unlisted)}",
        )
    return data, trusted
