"""KServe's scikit-learn server, for the benchmark: run with KServe's own virtualenv.

KServe's `sklearnserver` package is not on PyPI, so this script does what its
`SKLearnModel` does with the `kserve` package: `load()` joblib-loads the one model
file of the model directory, `predict()` takes the V1 `instances` (or `inputs`) through
`get_predict_input`, calls the estimator's `predict` (`predict_proba` when
PREDICT_PROBA=true) and answers through `get_predict_response`, i.e.
`{"predictions": [...]}`. It imports nothing from this repository.

    python kserve_sklearn.py --model_dir DIR --model_name NAME --http_port PORT

KServe's own flags apply (its parser is this one's parent); gRPC is off by default
here since the benchmark uses HTTP only.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import joblib
import kserve
from kserve.errors import InferenceError, ModelMissingError
from kserve.utils.utils import get_predict_input, get_predict_response

MODEL_EXTENSIONS = (".joblib", ".pkl", ".pickle")
ENV_PREDICT_PROBA = "PREDICT_PROBA"


class SKLearnModel(kserve.Model):  # type: ignore[misc]  # kserve is untyped here
    def __init__(self, name: str, model_dir: str) -> None:
        super().__init__(name)
        self.name = name
        self.model_dir = model_dir
        self.ready = False
        self._model: Any = None

    def load(self) -> bool:
        model_path = Path(self.model_dir)
        model_files = [
            p for p in sorted(model_path.iterdir()) if p.is_file() and p.suffix in MODEL_EXTENSIONS
        ]
        if not model_files:
            raise ModelMissingError(str(model_path))
        if len(model_files) > 1:
            raise RuntimeError(f"More than one model file in {model_path}: {model_files}")
        self._model = joblib.load(model_files[0])
        self.ready = True
        return self.ready

    def predict(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        try:
            instances = get_predict_input(payload)
            if os.environ.get(ENV_PREDICT_PROBA, "false").lower() == "true" and hasattr(
                self._model, "predict_proba"
            ):
                result = self._model.predict_proba(instances)
            else:
                result = self._model.predict(instances)
            return get_predict_response(payload, result, self.name)
        except Exception as e:
            raise InferenceError(str(e)) from e


def main() -> None:
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
    parser.add_argument("--model_dir", required=True, help="directory of model.joblib")
    args, _ = parser.parse_known_args()
    model = SKLearnModel(args.model_name, args.model_dir)
    model.load()
    kserve.ModelServer(http_port=args.http_port, workers=1, enable_grpc=args.enable_grpc).start(
        [model]
    )


if __name__ == "__main__":
    main()
