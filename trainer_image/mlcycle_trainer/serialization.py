"""The fitted pipeline in the skops format, and the types its loader must trust.

skops refuses to load types it does not trust; it trusts no estimator by itself here, as in
the model server (`model_format.skops_io`). MLflow records the trusted ones in the MLmodel
file, and the model server loads nothing else. Those are the types the
algorithm table lists for the algorithm: a model holding any other type is refused.
"""

from __future__ import annotations

from sklearn.pipeline import Pipeline

from mlcycle_contract.api.algorithms import AlgorithmDefinition
from mlcycle_contract.model_format import skops_io
from mlcycle_trainer.errors import MODEL_NOT_SERIALIZABLE, InvalidInput, name_list


def serialize(pipeline: Pipeline, algorithm: AlgorithmDefinition) -> tuple[bytes, list[str]]:
    """The skops bytes of the pipeline and the types to trust when loading it."""
    skops = skops_io()
    data: bytes = skops.dumps(pipeline)
    trusted = algorithm.skops_trusted_types()
    unlisted = sorted(set(skops.get_untrusted_types(data=data)) - set(trusted))
    if unlisted:
        raise InvalidInput(
            MODEL_NOT_SERIALIZABLE,
            f"the fitted {algorithm.name} holds types that skops does not trust and the "
            f"algorithm table does not list: {name_list(unlisted)}",
        )
    return data, trusted
