"""KServe's own virtualenv, never the project's: kserve 0.21 with the project's
scikit-learn, numpy and joblib versions, so it loads the same `model.joblib`."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

KSERVE_SPEC = "kserve==0.21.*"
PINNED_FROM_PROJECT = ("scikit-learn", "numpy", "joblib")
REPORTED = ("kserve", "scikit-learn", "numpy", "uvicorn", "fastapi")

_VERSIONS_SCRIPT = (
    "import json, sys; from importlib import metadata; "
    "print(json.dumps({n: metadata.version(n) for n in sys.argv[1:]}))"
)


def venv_versions(python: Path, names: tuple[str, ...] = REPORTED) -> dict[str, str]:
    """Versions of `names` installed in the virtualenv of `python`; {} if unusable."""
    if not python.exists():
        return {}
    done = subprocess.run(
        [str(python), "-c", _VERSIONS_SCRIPT, *names], capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0:
        return {}
    versions: dict[str, str] = json.loads(done.stdout)
    return versions


def ensure_kserve_venv(venv: Path, uv: Path) -> Path:
    """Create or update `venv` when needed; return its python."""
    python = venv / "bin" / "python"
    pins = [f"{name}=={metadata.version(name)}" for name in PINNED_FROM_PROJECT]
    installed = venv_versions(python, ("kserve", *PINNED_FROM_PROJECT))
    wanted = {pin.split("==")[0]: pin.split("==")[1] for pin in pins}
    up_to_date = installed.get("kserve", "").startswith("0.21.") and all(
        installed.get(name) == version for name, version in wanted.items()
    )
    if up_to_date:
        return python
    if not python.exists():
        subprocess.run(
            [str(uv), "venv", "--quiet", "--python", sys.executable, str(venv)],
            check=True,
            timeout=300,
        )
    subprocess.run(
        [str(uv), "pip", "install", "--quiet", "--python", str(python), KSERVE_SPEC, *pins],
        check=True,
        timeout=900,
    )
    return python
