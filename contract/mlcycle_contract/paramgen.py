"""Exports the allow-listed estimators' parameters and scikit-learn's constraints on them to
`mlcycle_contract/api/estimator_parameters.json`, which the operator checks specs against
without importing scikit-learn.

`python -m mlcycle_contract.paramgen` writes the file from the installed scikit-learn;
`--check` only compares and exits 1 when it differs (after a scikit-learn upgrade). A
constraint kind this module does not know (none of the allow-listed estimators uses
"sparse matrix", "cv_object", "nan" or MissingValues today) stops the export, rather than
being exported as a check that accepts or refuses the wrong values. scikit-learn is imported
when the export runs, not with this module: the contract package imports none of its
programs' dependencies.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from typing import Any

from mlcycle_contract.api.algorithms import ALGORITHMS
from mlcycle_contract.api.estimator_parameters import ESTIMATOR_PARAMETERS_FILE

Json = dict[str, Any]

_INTERVAL_TYPES = {"Integral": "int", "Real": "real", "RealNotInt": "real_not_int"}


def _type_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _checks(constraint: Any) -> list[Json]:
    """The checks of one scikit-learn constraint object: any of them holding meets it."""
    from sklearn.utils import _param_validation as validation

    if isinstance(constraint, validation.Interval):
        return [{"kind": "interval", "over": _INTERVAL_TYPES[constraint.type.__name__],
                 "left": constraint.left, "right": constraint.right,
                 "closed": constraint.closed}]
    if isinstance(constraint, validation.Options):
        return [{"kind": "options", "type": _type_name(constraint.type),
                 "options": sorted(constraint.options, key=repr)}]
    if isinstance(constraint, validation._InstancesOf):
        return [{"kind": "instance", "type": _type_name(constraint.type)}]
    if isinstance(constraint, validation.HasMethods):
        return [{"kind": "has_methods", "methods": list(constraint.methods)}]
    simple = {
        validation._NoneConstraint: {"kind": "none"},
        validation._ArrayLikes: {"kind": "array_like"},
        validation._Callables: {"kind": "callable"},
    }
    if type(constraint) in simple:
        return [simple[type(constraint)]]
    composite = (validation._RandomStates, validation._Booleans, validation._VerboseHelper)
    if isinstance(constraint, composite):
        return [check for part in constraint._constraints for check in _checks(part)]
    raise TypeError(f"no check for scikit-learn's constraint {constraint!r}")


def _description(constraint: Any) -> str:
    """scikit-learn's wording, with a set's options in a stable order (a set's iteration
    order changes from one process to the next)."""
    from sklearn.utils import _param_validation as validation

    if isinstance(constraint, validation.Options):
        constraint = copy.copy(constraint)
        constraint.options = sorted(constraint.options, key=repr)
    return str(constraint)


def _constraint(declared: Any) -> Json:
    from sklearn.utils import _param_validation as validation

    constraint = validation.make_constraint(declared)
    exported: Json = {"description": _description(constraint), "any_of": _checks(constraint)}
    if constraint.hidden:
        exported["hidden"] = True
    return exported


def _json_value(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_json_value(item) for item in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"default {value!r} has no JSON form")


def estimator_parameters(estimator: type[Any]) -> Json:
    """What `EstimatorParameters` holds, from the estimator class."""
    defaults = estimator().get_params(deep=False)
    declared = estimator._parameter_constraints
    return {
        "class_name": estimator.__name__,
        "defaults": {name: _json_value(value) for name, value in defaults.items()},
        "constraints": {name: [_constraint(c) for c in declared[name]]
                        for name in defaults
                        if name in declared and declared[name] != "no_validation"},
    }


def export() -> Json:
    """The data file's content, from the installed scikit-learn."""
    import sklearn

    return {
        "scikit_learn": sklearn.__version__,
        "estimators": {algorithm.estimator: estimator_parameters(algorithm.estimator_class())
                       for algorithm in ALGORITHMS.values()},
    }


def render(exported: Json) -> str:
    # allow_nan: one option is Infinity, which Python's json reads back.
    return json.dumps(exported, indent=1, sort_keys=True, allow_nan=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlcycle_contract.paramgen",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="compare only; exit 1 when the file differs")
    args = parser.parse_args(argv)
    exported = export()
    text = render(exported)
    current = (ESTIMATOR_PARAMETERS_FILE.read_text(encoding="utf-8")
               if ESTIMATOR_PARAMETERS_FILE.exists() else None)
    if args.check:
        if current != text:
            print(f"{ESTIMATOR_PARAMETERS_FILE} differs from scikit-learn "
                  f"{exported['scikit_learn']}'s constraints: run python -m "
                  "mlcycle_contract.paramgen", file=sys.stderr)
            return 1
        return 0
    if current != text:
        ESTIMATOR_PARAMETERS_FILE.write_text(text, encoding="utf-8")
        print(f"wrote {ESTIMATOR_PARAMETERS_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
