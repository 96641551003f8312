"""The holdout split follows the Dataset's spec.split: its seed, its stratification, and its
fraction unless the TrainingJob holds out another."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlcycle_contract.api.dataset import SplitSpec
from mlcycle_contract.api.evaluation import ValidationSpec
from mlcycle_contract.api.learning import Task
from mlcycle_trainer.errors import InvalidInput
from mlcycle_trainer.validation import Holdout, split

# 90 rows of class 0, 10 of class 1: an unstratified holdout of 20 rows rarely has exactly 2.
ROWS = 100
X = pd.DataFrame({"x": np.arange(ROWS, dtype="float64")})
Y = pd.Series([0] * 90 + [1] * 10)


def holdout_rows(split_spec: SplitSpec, task: Task = Task.CLASSIFICATION) -> list[int]:
    holdout = Holdout.resolve(split_spec, ValidationSpec(), task)
    _, x_holdout, _, _ = split(X, Y, holdout)
    return sorted(x_holdout.index)


def test_the_same_seed_gives_the_same_split_and_another_seed_another() -> None:
    assert holdout_rows(SplitSpec(seed=1)) == holdout_rows(SplitSpec(seed=1))
    assert holdout_rows(SplitSpec(seed=1)) != holdout_rows(SplitSpec(seed=2))


def test_a_stratified_split_keeps_the_class_proportions_for_every_seed() -> None:
    for seed in range(20):
        rows = holdout_rows(SplitSpec(seed=seed, stratify=True))
        assert len(rows) == 20 and sum(Y[rows]) == 2, seed


def test_an_unstratified_split_does_not() -> None:
    minority = {sum(Y[holdout_rows(SplitSpec(seed=s, stratify=False))]) for s in range(20)}
    assert minority != {2}


def test_only_classification_is_stratified() -> None:
    split_spec = SplitSpec(seed=3, stratify=True)
    assert Holdout.resolve(split_spec, ValidationSpec(), Task.REGRESSION).stratify is False
    assert Holdout.resolve(split_spec, ValidationSpec(), Task.CLASSIFICATION).stratify is True


def test_the_training_job_may_hold_out_another_fraction() -> None:
    split_spec = SplitSpec(test_fraction=0.3, seed=5)
    assert Holdout.resolve(split_spec, ValidationSpec(), Task.CLASSIFICATION).fraction == 0.3
    own = ValidationSpec(holdout_fraction=0.1)
    assert Holdout.resolve(split_spec, own, Task.CLASSIFICATION) == Holdout(0.1, 5, True)


def test_a_class_of_one_row_cannot_be_stratified_and_the_error_names_the_field() -> None:
    y = pd.Series([0] * 50 + [1] * 49 + [2])
    holdout = Holdout.resolve(SplitSpec(stratify=True), ValidationSpec(), Task.CLASSIFICATION)
    with pytest.raises(InvalidInput) as excinfo:
        split(X, y, holdout)
    assert excinfo.value.field == "spec.split.stratify"
    assert "class '2' has only 1 row" in excinfo.value.message
    unstratified = Holdout.resolve(SplitSpec(stratify=False), ValidationSpec(), Task.CLASSIFICATION)
    assert len(split(X, y, unstratified)[1]) == 20


def test_too_few_holdout_rows_for_the_classes_name_the_field() -> None:
    y = pd.Series(np.repeat(np.arange(25), 4))  # 25 classes, 5 holdout rows
    holdout = Holdout.resolve(
        SplitSpec(test_fraction=0.05, stratify=True), ValidationSpec(), Task.CLASSIFICATION
    )
    with pytest.raises(InvalidInput) as excinfo:
        split(X, y, holdout)
    assert excinfo.value.field == "spec.split.stratify"
