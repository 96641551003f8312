"""The search space as Optuna samples it: one algorithm (a categorical choice when several
compete) and its hyperparameters, named `<algorithm>.<parameter>` in AutoML so that each
algorithm's parameters keep their own distribution."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna

from mlcycle_contract.api.parameters import ParameterSpace, ParameterType

ALGORITHM_PARAMETER = "algorithm"
Spaces = dict[str, dict[str, ParameterSpace]]  # algorithm -> parameter -> distribution


def _primitive(choices: list[Any]) -> bool:
    """Whether Optuna can store the choices as they are (lists, e.g. layer sizes, cannot)."""
    return all(choice is None or isinstance(choice, bool | int | float | str)
               for choice in choices)


def _stored_choices(parameter: ParameterSpace) -> list[Any]:
    choices = list(parameter.choices or [])
    return choices if _primitive(choices) else [json.dumps(choice) for choice in choices]


def _suggest(trial: optuna.trial.BaseTrial, name: str, parameter: ParameterSpace) -> Any:
    low, high = parameter.low, parameter.high
    if parameter.type == ParameterType.INT:
        assert low is not None and high is not None  # the model guarantees both
        return trial.suggest_int(name, int(low), int(high), step=int(parameter.step or 1),
                                 log=parameter.log)
    if parameter.type == ParameterType.FLOAT:
        assert low is not None and high is not None
        return trial.suggest_float(name, low, high, step=parameter.step, log=parameter.log)
    stored = _stored_choices(parameter)
    picked = trial.suggest_categorical(name, stored)
    return picked if _primitive(list(parameter.choices or [])) else json.loads(str(picked))


def _prefix(algorithm: str, spaces: Spaces) -> str:
    return f"{algorithm}." if len(spaces) > 1 else ""


def suggest(trial: optuna.trial.BaseTrial, spaces: Spaces) -> tuple[str, dict[str, Any]]:
    """The trial's algorithm and hyperparameters, as scikit-learn takes them: sampled for a
    running trial, read back from a frozen one (which raises ValueError if one is missing)."""
    algorithms = list(spaces)
    algorithm = (str(trial.suggest_categorical(ALGORITHM_PARAMETER, algorithms))
                 if len(algorithms) > 1 else algorithms[0])
    prefix = _prefix(algorithm, spaces)
    return algorithm, {name: _suggest(trial, prefix + name, parameter)
                       for name, parameter in spaces[algorithm].items()}


def grid(spaces: Spaces) -> dict[str, list[Any]]:
    """Optuna's grid: every value of each parameter (one algorithm; the API refuses more)."""
    ((algorithm, space),) = spaces.items()
    values: dict[str, list[Any]] = {}
    for name, parameter in space.items():
        if parameter.type == ParameterType.CATEGORICAL:
            values[name] = _stored_choices(parameter)
            continue
        low, high, step = parameter.low, parameter.high, parameter.step
        assert low is not None and high is not None and step is not None
        points = np.arange(low, high + step / 2, step)
        values[name] = [int(v) if parameter.type == ParameterType.INT else float(v)
                        for v in points]
    return {_prefix(algorithm, spaces) + name: choices for name, choices in values.items()}


class GridSampler(optuna.samplers.GridSampler):
    """Optuna's grid sampler for ask-and-tell workers: Optuna's own stops `study.optimize`
    when the grid is exhausted, which outside that loop is an error; a worker stops by
    counting the grid's points instead (`grid_size`)."""

    def after_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial,
                    state: optuna.trial.TrialState, values: Sequence[float] | None) -> None:
        pass


def grid_size(points: dict[str, list[Any]]) -> int:
    return math.prod(len(values) for values in points.values())
