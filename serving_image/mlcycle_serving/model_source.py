"""Where the model comes from: URI resolution, download, and its recorded runtime.

Runs once at start-up, over MLflow's REST API with the standard library (no MLflow
client: it would cost the server seconds of imports and tens of MiB for three calls). An
alias (`models:/iris@champion`) or `latest` is resolved to a concrete registered version,
so the server keeps serving that version even if the alias moves (the operator rolls out
a new Deployment for that). Artifacts come through the tracking server's artifact proxy
(`mlflow-artifacts:` URIs, `mlflow server --artifacts-destination`), and only the files the
server reads: the MLmodel file, the skops file and requirements.txt. The runtime the model
was trained in is read from, first match wins: the model version's tags, the training run's
tags and params (`runtime.python`, `runtime.sklearn`, ...), then the MLmodel file and its
requirements.txt.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlcycle_contract.environment import TAG_RUNTIME_PREFIX
from mlcycle_contract.model_format import MLMODEL_FILE, SKOPS_FILE
from mlcycle_contract.runtime import DISTRIBUTIONS, current_runtime

logger = logging.getLogger(__name__)

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:/")
_PIN = re.compile(r"^\s*([A-Za-z0-9_.\-\[\]]+)\s*==\s*([^\s;#]+)")
REQUIREMENTS_FILE = "requirements.txt"
MODEL_FILES = (MLMODEL_FILE, SKOPS_FILE, REQUIREMENTS_FILE)
"""What is downloaded of a model version, of the files it has."""
PROXIED_ARTIFACTS = "mlflow-artifacts:"
TIMEOUT_SECONDS = 60


class ModelSourceError(RuntimeError):
    """The model URI cannot be resolved or downloaded."""


@dataclass(frozen=True)
class ModelReference:
    """A model URI, and the concrete version it resolved to."""

    uri: str
    resolved_uri: str
    registered_name: str | None = None
    version: str | None = None
    alias: str | None = None
    run_id: str | None = None
    version_tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RuntimeVersions:
    """Versions recorded with the model and those of the serving process."""

    recorded: dict[str, str]
    serving: dict[str, str]
    requirements: dict[str, str]

    @property
    def mismatches(self) -> list[str]:
        """Keys recorded for the model whose value differs in the serving runtime."""
        return sorted(
            key
            for key, value in self.recorded.items()
            if key in self.serving and self.serving[key] != value
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "recorded": self.recorded,
            "serving": self.serving,
            "requirements": self.requirements,
            "mismatches": self.mismatches,
        }


class NotFound(Exception):
    """The tracking server answered 404 (an artifact that does not exist)."""


@dataclass(frozen=True)
class TrackingServer:
    """MLflow's REST API at MLFLOW_TRACKING_URI, with its standard credentials if set."""

    url: str
    headers: dict[str, str]

    @classmethod
    def from_env(cls) -> TrackingServer:
        url = os.environ.get("MLFLOW_TRACKING_URI", "").rstrip("/")
        if not url.startswith(("http://", "https://")):
            raise ModelSourceError(
                f"MLFLOW_TRACKING_URI must be the tracking server's http(s) URL, got {url!r}"
            )
        headers = {"User-Agent": "mlcycle-serving"}
        user = os.environ.get("MLFLOW_TRACKING_USERNAME")
        token = os.environ.get("MLFLOW_TRACKING_TOKEN")
        if user:
            password = os.environ.get("MLFLOW_TRACKING_PASSWORD", "")
            basic = base64.b64encode(f"{user}:{password}".encode()).decode()
            headers["Authorization"] = f"Basic {basic}"
        elif token:
            headers["Authorization"] = f"Bearer {token}"
        return cls(url, headers)

    def _open(self, path: str) -> Any:
        request = urllib.request.Request(self.url + path, headers=self.headers)
        try:
            return urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS)
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                raise NotFound(path) from None
            detail = exc.read()[:300].decode(errors="replace")
            raise ModelSourceError(f"MLflow answered {exc.code} to {path}: {detail}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise ModelSourceError(f"cannot reach MLflow at {self.url}: {exc}") from None

    def get(self, endpoint: str, **params: str) -> dict[str, Any]:
        """`GET /api/2.0/mlflow/<endpoint>?params` as JSON."""
        query = urllib.parse.urlencode(params)
        with self._open(f"/api/2.0/mlflow/{endpoint}?{query}") as answer:
            payload: dict[str, Any] = json.loads(answer.read())
        return payload

    def files(self, artifact_path: str) -> set[str]:
        """Names of the files in one directory behind the artifact proxy."""
        query = urllib.parse.urlencode({"path": artifact_path})
        with self._open(f"/api/2.0/mlflow-artifacts/artifacts?{query}") as answer:
            listed = json.loads(answer.read()).get("files", [])
        return {entry["path"].rsplit("/", 1)[-1] for entry in listed if not entry.get("is_dir")}

    def read(self, artifact_path: str) -> bytes:
        """One small file through the artifact proxy."""
        quoted = urllib.parse.quote(artifact_path)
        with self._open(f"/api/2.0/mlflow-artifacts/artifacts/{quoted}") as answer:
            data: bytes = answer.read()
        return data

    def download(self, artifact_path: str, destination: Path) -> None:
        """One file through the artifact proxy."""
        quoted = urllib.parse.quote(artifact_path)
        with (
            self._open(f"/api/2.0/mlflow-artifacts/artifacts/{quoted}") as answer,
            destination.open("wb") as out,
        ):
            shutil.copyfileobj(answer, out)


def resolve_model_uri(uri: str) -> ModelReference:
    """Resolve `models:/name/<version>`, `models:/name@alias` and `models:/name/latest`;
    a local directory stands for itself."""
    if not uri.startswith("models:/"):
        if _SCHEME.match(uri) and not uri.startswith("file://"):
            raise ModelSourceError(
                f"unsupported model URI {uri!r}: use models:/<name>/<version>, "
                "models:/<name>@<alias>, models:/<name>/latest or a local directory"
            )
        return ModelReference(uri=uri, resolved_uri=uri)
    path = uri[len("models:/") :].strip("/")
    parts = path.split("/")
    alias: str | None = None
    suffix = ""
    if len(parts) == 1 and "@" in path:
        name, alias = path.rsplit("@", 1)
    elif len(parts) == 2 and parts[0] and (parts[1].isdigit() or parts[1].lower() == "latest"):
        name, suffix = parts
    else:
        raise ModelSourceError(
            f"unsupported model URI {uri!r}: use models:/<name>/<version>, "
            "models:/<name>@<alias> or models:/<name>/latest"
        )
    tracking = TrackingServer.from_env()
    try:
        if alias is not None:
            found = tracking.get("registered-models/alias", name=name, alias=alias)
        elif suffix.isdigit():
            found = tracking.get("model-versions/get", name=name, version=suffix)
        else:
            found = tracking.get("registered-models/get-latest-versions", name=name)
            versions = found.get("model_versions") or []
            if not versions:
                raise ModelSourceError(f"registered model {name!r} has no versions")
            found = {"model_version": max(versions, key=lambda mv: int(mv["version"]))}
    except NotFound:
        raise ModelSourceError(f"cannot resolve {uri!r}: no such model version") from None
    except ModelSourceError as exc:
        raise ModelSourceError(f"cannot resolve {uri!r}: {exc}") from None
    model_version = found["model_version"]
    version = str(model_version["version"])
    return ModelReference(
        uri=uri,
        resolved_uri=f"models:/{name}/{version}",
        registered_name=name,
        version=version,
        alias=alias,
        run_id=model_version.get("run_id") or None,
        version_tags={tag["key"]: tag.get("value", "") for tag in model_version.get("tags", [])},
    )


def download_model(reference: ModelReference, download_dir: str = "") -> Path:
    """A local directory holding the model's MLmodel (and, if it has them, its skops file
    and requirements.txt): the directory itself for a local model, else downloaded."""
    uri = reference.resolved_uri
    if not uri.startswith("models:/"):
        path = Path(uri[len("file://") :] if uri.startswith("file://") else uri)
        if not (path / MLMODEL_FILE).is_file():
            raise ModelSourceError(f"no {MLMODEL_FILE} file in {path}")
        return path
    tracking = TrackingServer.from_env()
    assert reference.registered_name is not None and reference.version is not None
    found = tracking.get(
        "model-versions/get-download-uri",
        name=reference.registered_name,
        version=reference.version,
    )
    artifact_uri = str(found.get("artifact_uri", ""))
    if not artifact_uri.startswith(PROXIED_ARTIFACTS):
        raise ModelSourceError(
            f"{uri} is stored at {artifact_uri!r}: the model server reads artifacts only "
            "through the tracking server (mlflow server --artifacts-destination)"
        )
    artifact_path = urllib.parse.urlsplit(artifact_uri).path.strip("/")
    if download_dir:
        os.makedirs(download_dir, exist_ok=True)
    target = Path(download_dir or tempfile.mkdtemp(prefix="model-"))
    try:
        present = tracking.files(artifact_path)
    except NotFound:
        present = set()
    if MLMODEL_FILE not in present:
        raise ModelSourceError(f"{uri} has no {MLMODEL_FILE} file")
    for name in MODEL_FILES:
        if name in present:  # a model in another format has no skops file: judged later
            tracking.download(f"{artifact_path}/{name}", target / name)
    return target


def read_requirements(model_dir: Path) -> dict[str, str]:
    """Pinned `name==version` lines of the model's requirements.txt."""
    path = model_dir / REQUIREMENTS_FILE
    if not path.is_file():
        return {}
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        match = _PIN.match(line)
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


def _runtime_entries(values: dict[str, Any]) -> dict[str, str]:
    return {
        key[len(TAG_RUNTIME_PREFIX) :]: str(value)
        for key, value in values.items()
        if key.startswith(TAG_RUNTIME_PREFIX) and value is not None
    }


def _run_runtime(run_id: str) -> dict[str, str]:
    """`runtime.*` tags and params of the training run (tags win)."""
    try:
        data = TrackingServer.from_env().get("runs/get", run_id=run_id)["run"]["data"]
    except (ModelSourceError, NotFound, KeyError) as exc:
        logger.warning("cannot read runtime of run %s: %s", run_id, exc)
        return {}

    def pairs(kind: str) -> dict[str, Any]:
        return {item["key"]: item.get("value") for item in data.get(kind, [])}

    return {**_runtime_entries(pairs("params")), **_runtime_entries(pairs("tags"))}


def recorded_runtime(
    reference: ModelReference, model_dir: Path, mlmodel: dict[str, Any]
) -> RuntimeVersions:
    """Combine every place the training runtime may have been recorded."""
    requirements = read_requirements(model_dir)
    recorded: dict[str, str] = {}
    for key, requirement in DISTRIBUTIONS.items():
        if requirement in requirements:
            recorded[key] = requirements[requirement]
    flavors: dict[str, Any] = mlmodel.get("flavors") or {}
    for key, value in (
        ("python", (flavors.get("python_function") or {}).get("python_version")),
        ("sklearn", (flavors.get("sklearn") or {}).get("sklearn_version")),
        ("mlflow", mlmodel.get("mlflow_version")),
    ):
        if value:
            recorded[key] = str(value)
    if reference.registered_name and reference.run_id:
        recorded.update(_run_runtime(reference.run_id))
    recorded.update(_runtime_entries(reference.version_tags))
    return RuntimeVersions(recorded=recorded, serving=current_runtime(), requirements=requirements)
