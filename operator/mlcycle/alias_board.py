"""Every alias in the MLflow registry, read in one paged search and shared by every
ModelDeployment that follows an alias.

Polling the registry once per ModelDeployment would make MLflow's load at rest grow with
their number; one search of the registered models (which carry their aliases) answers them
all, so at rest the operator sends MLflow one request per poll interval per 1,000 registered
models, however many deployments follow them. A deployment reconciles (resolving its
version as its namespace's user, so MLflow's permissions still decide what it may serve)
only when the version its alias names has changed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from mlcycle import metrics
from mlcycle.mlflow_api import Mlflow

PAGE_SIZE = 1000
AliasKey = tuple[str, str]  # (registered model name, alias)


@dataclass(frozen=True)
class AliasBoard:
    read_at: float  # time.monotonic()
    versions: dict[AliasKey, int]


@metrics.registry_call("read_aliases", {})
def read_aliases(tracking_uri: str) -> dict[AliasKey, int]:
    """As the operator's own MLflow user (the admin): one request per page of models."""
    admin = Mlflow.admin(tracking_uri)
    versions: dict[AliasKey, int] = {}
    token: str | None = None
    while True:
        page = admin.search_registered_models(max_results=PAGE_SIZE, page_token=token)
        for model in page.items:
            for alias, version in model.aliases.items():
                versions[(model.name, alias)] = int(version)
        token = page.token
        if not token:
            return versions


class SharedBoard:
    """The board, read again only when older than the caller's poll interval: concurrent
    timers wait for one read instead of each sending their own."""

    def __init__(self, read: Callable[[], dict[AliasKey, int]],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._read, self._clock = read, clock
        self._board: AliasBoard | None = None
        self._lock = threading.Lock()

    def version(self, key: AliasKey, max_age: float) -> int | None:
        with self._lock:
            board = self._board
            if board is None or self._clock() - board.read_at >= max_age:
                board = self._board = AliasBoard(self._clock(), self._read())
            return board.versions.get(key)
