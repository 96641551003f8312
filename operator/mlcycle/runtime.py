"""The serving runtime, and the check that a model was trained in the same one.

The serving image and the trainer image install one runtime lock; the operator image is
built on it too, so by default the serving runtime is the operator's own. A model whose
recorded training runtime differs is never rolled out.
"""

from __future__ import annotations

from mlcycle_contract.runtime import RUNTIME_KEYS


def parse_runtime(text: str) -> dict[str, str]:
    """`python=3.11.7,sklearn=1.9.1,numpy=2.4.6` -> a dict."""
    pairs = (item.split("=", 1) for item in text.split(",") if "=" in item)
    return {key.strip(): value.strip() for key, value in pairs}


def runtime_mismatch(trained: dict[str, str], serving: dict[str, str]) -> str | None:
    """None when identical; else a message with both versions of what differs."""
    missing = [key for key in RUNTIME_KEYS if key not in trained]
    if missing:
        return (f"the model version records no training runtime for {', '.join(missing)}; "
                "it was not trained by mlcycle's trainer")
    differences = [
        f"{key} {trained[key]} (trained) != {serving.get(key)} (serving)"
        for key in RUNTIME_KEYS if trained[key] != serving.get(key)
    ]
    return "; ".join(differences) or None
