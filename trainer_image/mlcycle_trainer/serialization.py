"""The fitted pipeline in the skops format, and the types its loader must trust.

skops refuses to load types it does not know unless they are listed as trusted; MLflow
records the list in the MLmodel file. The list is read from the serialized model itself
and limited to scikit-learn's own types (and numpy.dtype), so nothing foreign is trusted.
"""

from __future__ import annotations

import skops.io
from sklearn.pipeline import Pipeline

from mlcycle_trainer.errors import MODEL_NOT_SERIALIZABLE, InvalidInput, name_list

TRUSTED_MODULE_PREFIX = "sklearn."
# Outside scikit-learn, only plain data descriptions (a fitted imputer keeps its input dtype).
TRUSTED_EXTRA_TYPES = frozenset({"numpy.dtype"})


def serialize(pipeline: Pipeline) -> tuple[bytes, list[str]]:
    """The skops bytes of the pipeline and the (scikit-learn) types to trust when loading."""
    data: bytes = skops.io.dumps(pipeline)
    untrusted = sorted(skops.io.get_untrusted_types(data=data))
    foreign = [
        name
        for name in untrusted
        if not name.startswith(TRUSTED_MODULE_PREFIX) and name not in TRUSTED_EXTRA_TYPES
    ]
    if foreign:
        raise InvalidInput(
            MODEL_NOT_SERIALIZABLE,
            "the model holds types outside scikit-learn that skops will not trust: "
            f"{name_list(foreign)}",
        )
    return data, untrusted
