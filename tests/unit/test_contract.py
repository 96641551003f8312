"""The operator and the trainer image spell the contract between them once each; they agree."""

from __future__ import annotations

import mlcycle_serving.contract as serving_side
import mlcycle_trainer.contract as trainer_side
from mlcycle import algorithms
from mlcycle import contract as operator_side
from mlcycle_contract.api.learning import Algorithm


def public_constants(module: object) -> dict[str, object]:
    return {name: getattr(module, name) for name in dir(module) if name.isupper()}


def test_every_name_the_operator_uses_means_the_same_to_the_image_that_reads_it() -> None:
    ours = public_constants(operator_side)
    images = {"trainer": public_constants(trainer_side),
              "serving": public_constants(serving_side)}
    assert ours, "the operator's contract is empty"
    for name, value in ours.items():
        defined = {image: names[name] for image, names in images.items() if name in names}
        assert defined, f"{name} is spelled only on the operator's side"
        for image, theirs in defined.items():
            assert theirs == value, f"{name}: operator {value!r}, {image} {theirs!r}"


def test_both_sides_map_every_algorithm_to_the_same_estimator() -> None:
    from mlcycle_trainer.algorithms import ALGORITHMS

    assert set(ALGORITHMS) == {a.value for a in Algorithm}
    for algorithm in Algorithm:
        assert algorithms.estimator_class(algorithm) is ALGORITHMS[algorithm.value].estimator
