"""The HTTP application: routes of the three protocols over one model and batcher.

`create_app(model)` returns a plain ASGI app. Its lifespan starts the batcher and,
if the model is not loaded yet, loads it in a thread: liveness answers at once,
readiness once the model is loaded. Shutdown finishes every queued prediction.
The three inference routes share one path, body -> decode -> predict -> encode, each
with its protocol's decoder and encoder (`protocols`); every error is answered through
`errors`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from time import perf_counter
from typing import TYPE_CHECKING, Any

import orjson
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from mlcycle_contract.drift import DRIFT_PATH
from mlcycle_serving import __version__
from mlcycle_serving.asgi_io import (
    ClientDisconnected,
    Receive,
    Response,
    Scope,
    Send,
    read_body,
    send_response,
)
from mlcycle_serving.batching import MicroBatcher
from mlcycle_serving.drift import DriftMonitor, NoReference, load_reference
from mlcycle_serving.errors import (
    Conflict,
    MethodNotAllowed,
    ModelNotReady,
    NotFound,
    error_answer,
)
from mlcycle_serving.metrics import ServingMetrics
from mlcycle_serving.model import Model
from mlcycle_serving.openapi import openapi_document
from mlcycle_serving.protocols import (
    KSERVE_V1_PREDICT,
    MLFLOW_INVOCATIONS,
    V2_INFER,
    InferenceProtocol,
)
from mlcycle_serving.settings import ServerSettings

if TYPE_CHECKING:
    from mlcycle_serving.pod_drift import PodDrift

logger = logging.getLogger("mlcycle_serving")
access_logger = logging.getLogger("mlcycle_serving.access")

SERVER_NAME = "mlcycle-serving"
DECODE_IN_THREAD_BYTES = 256 * 1024
"""Bodies larger than this are decoded in a thread so the event loop keeps serving."""


@dataclass
class Call:
    """One request as the handlers see it."""

    scope: Scope
    receive: Receive
    params: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Call], Awaitable[Response]]


def _json(status: int, payload: Any) -> Response:
    return Response(status, orjson.dumps(payload))


class ServingApp:
    """ASGI application serving one `Model`."""

    def __init__(
        self,
        model: Model,
        settings: ServerSettings,
        on_load_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.model = model
        self.settings = settings
        self.metrics = ServingMetrics()
        self.drift: DriftMonitor | None = None
        self.drift_error: str | None = None
        # Set in a worker of several (server.serve_worker): /drift answers the whole Pod's.
        self.pod_drift: PodDrift | None = None
        self.batcher = MicroBatcher(
            self._predict,
            max_batch_size=settings.max_batch_size,
            max_wait_s=settings.max_batch_wait_ms / 1000,
            observer=self.metrics.observe_batch,
        )
        self._on_load_error = on_load_error
        # Set on SIGTERM: readiness fails so endpoints drop this pod, predictions go on.
        self.draining = False
        self._load_task: asyncio.Task[None] | None = None
        static_routes: dict[str, dict[str, Handler]] = {
            "/": {"GET": self.root},
            "/v2": {"GET": self.v2_server_metadata},
            "/v2/health/live": {"GET": self.live},
            "/v2/health/ready": {"GET": self.ready},
            "/v1/models": {"GET": self.v1_models},
            "/invocations": {"POST": self._inference(MLFLOW_INVOCATIONS)},
            "/ping": {"GET": self.ping},
            "/health": {"GET": self.ping},
            "/version": {"GET": self.version},
            "/metrics": {"GET": self.prometheus},
            "/openapi.json": {"GET": self.openapi},
            DRIFT_PATH: {"GET": self.drift_window},
        }
        self._static = {path: (path, methods) for path, methods in static_routes.items()}
        self._v2_model_routes: dict[str, tuple[str, dict[str, Handler]]] = {
            "": ("/v2/models/{name}", {"GET": self.v2_model_metadata}),
            "ready": ("/v2/models/{name}/ready", {"GET": self.v2_model_ready}),
            "infer": ("/v2/models/{name}/infer", {"POST": self._inference(V2_INFER)}),
        }
        self._v1_predict_route: tuple[str, dict[str, Handler]] = (
            "/v1/models/{name}:predict",
            {"POST": self._inference(KSERVE_V1_PREDICT)},
        )
        self._v1_model_route: tuple[str, dict[str, Handler]] = (
            "/v1/models/{name}",
            {"GET": self.v1_model},
        )
        self._request_counters: dict[tuple[str, str, int], Any] = {}
        self._latency: dict[str, Any] = {}
        if model.ready:
            self._model_loaded()
            self._start_drift()

    # --- ASGI --------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = perf_counter()
        path: str = scope["path"]
        method: str = scope["method"]
        route = "unmatched"
        try:
            route, methods, params = self._match(path)
            handler = methods.get(method)
            if handler is None:
                raise MethodNotAllowed(f"{method} not allowed on {path}", tuple(methods))
            response = await handler(Call(scope, receive, params))
        except ClientDisconnected:
            return
        except Exception as exc:
            response = self._error_response(exc, method, path)
        await send_response(send, response)
        self._observe(route, method, response.status, started)
        if self.settings.access_log:
            access_logger.info(
                "%s %s %d",
                method,
                path,
                response.status,
                extra={"duration_ms": round((perf_counter() - started) * 1000, 3)},
            )

    def _error_response(self, exc: Exception, method: str, path: str) -> Response:
        status, body, headers = error_answer(exc)
        if status >= 500 and not isinstance(exc, ModelNotReady):
            logger.error("Request failed", exc_info=exc, extra={"method": method, "path": path})
        return Response(status, body, headers=headers)

    def _observe(self, route: str, method: str, status: int, started: float) -> None:
        key = (route, method, status)
        counter = self._request_counters.get(key)
        if counter is None:
            counter = self.metrics.requests.labels(route=route, method=method, code=str(status))
            self._request_counters[key] = counter
        counter.inc()
        latency = self._latency.get(route)
        if latency is None:
            latency = self._latency[route] = self.metrics.request_seconds.labels(route=route)
        latency.observe(perf_counter() - started)

    def _match(self, path: str) -> tuple[str, dict[str, Handler], dict[str, str]]:
        static = self._static.get(path)
        if static is not None:
            return static[0], static[1], {}
        if path.startswith("/v2/models/"):
            parts = path[len("/v2/models/") :].split("/")
            version = ""
            if len(parts) >= 3 and parts[1] == "versions":
                version = parts[2]
                parts = [parts[0], *parts[3:]]
            if 1 <= len(parts) <= 2 and parts[0]:
                found = self._v2_model_routes.get(parts[1] if len(parts) == 2 else "")
                if found is not None:
                    return found[0], found[1], {"name": parts[0], "version": version}
        elif path.startswith("/v1/models/"):
            name = path[len("/v1/models/") :]
            if name.endswith(":predict"):
                return *self._v1_predict_route, {"name": name[: -len(":predict")]}
            if name and "/" not in name:
                return *self._v1_model_route, {"name": name}
        raise NotFound(f"no route {path}")

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.batcher.start()
                if not self.model.ready:
                    self._load_task = asyncio.create_task(self._load_model(), name="load")
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.batcher.close()
                logger.info("Finished queued predictions; stopped")
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _load_model(self) -> None:
        logger.info("Loading model", extra={"model": self.model.name, "uri": self.model.uri})
        try:
            await asyncio.to_thread(self.model.load)
        except Exception as exc:
            logger.error("Model failed to load", exc_info=exc, extra={"uri": self.model.uri})
            if self._on_load_error is not None:
                self._on_load_error(exc)
            return
        self._model_loaded()
        await asyncio.to_thread(self._start_drift)

    def _start_drift(self) -> None:
        """Count inputs against the version's reference, if monitoring is on and it has one;
        without one the model is served all the same."""
        if not self.settings.drift.enabled:
            return
        model = self.model
        try:
            reference = load_reference(model.reference)
            self.drift = DriftMonitor(
                reference, model.input_schema.names, self.settings.drift, model.version
            )
        except Exception as exc:
            reason = "NoReference" if isinstance(exc, NoReference) else type(exc).__name__
            self.drift_error = f"{reason}: {exc}"
            logger.error("Drift monitoring off", extra={"reason": reason, "error": str(exc)})
            return
        self.metrics.drift_monitoring.set(1)
        logger.info("Drift monitoring on", extra={"features": len(reference.features)})

    def _predict(self, batch: Any) -> Any:
        """Predict, then count the inputs (in the predict thread, off the event loop)."""
        predictions = self.model.predict(batch)
        if self.drift is not None:
            self.drift.observe(batch)
        return predictions

    def _model_loaded(self) -> None:
        model = self.model
        self.metrics.model_loaded(model.name, model.version, model.flavor, model.load_seconds or 0)

    # --- helpers -----------------------------------------------------------------

    def _check_model(self, call: Call, *, need_ready: bool) -> None:
        name = call.params.get("name", self.model.name)
        if name != self.model.name:
            raise NotFound(f"model {name!r} not found; this server serves {self.model.name!r}")
        version = call.params.get("version")
        if version and version != self.model.version:
            raise NotFound(
                f"version {version!r} of model {name!r} not found; serving "
                f"version {self.model.version or 'unversioned'!r}"
            )
        if need_ready:
            self._require_ready()

    def _require_ready(self) -> None:
        if not self.model.ready:
            state = "failed to load" if self.model.load_error else "is loading"
            raise ModelNotReady(f"model {self.model.name!r} {state}")

    def _inference(self, protocol: InferenceProtocol) -> Handler:
        """The one inference path, for `protocol`: body -> decode -> predict -> encode."""

        async def infer(call: Call) -> Response:
            self._check_model(call, need_ready=True)
            body = await read_body(call.scope, call.receive, self.settings.max_body_bytes)
            model = self.model
            if len(body) > DECODE_IN_THREAD_BYTES:
                request = await asyncio.to_thread(protocol.decode, body, model.input_schema)
            else:
                request = protocol.decode(body, model.input_schema)
            predictions = await self.batcher.predict(request.batch)
            return Response(200, protocol.encode(predictions, request, model))

        return infer

    # --- handlers ----------------------------------------------------------------

    async def root(self, call: Call) -> Response:
        return _json(200, {"status": "alive"})

    async def live(self, call: Call) -> Response:
        return _json(200, {"live": True})

    async def ready(self, call: Call) -> Response:
        ready = self.model.ready and not self.draining
        return _json(200 if ready else 503, {"ready": ready, "draining": self.draining})

    async def ping(self, call: Call) -> Response:
        self._require_ready()
        return _json(200, {"status": "ready"})

    async def v2_server_metadata(self, call: Call) -> Response:
        return _json(200, {"name": SERVER_NAME, "version": __version__, "extensions": []})

    async def v2_model_metadata(self, call: Call) -> Response:
        self._check_model(call, need_ready=True)
        model = self.model
        output = model.output_spec
        return _json(
            200,
            {
                "name": model.name,
                "versions": [model.version] if model.version else [],
                "platform": f"mlflow_{model.flavor}",
                "inputs": model.input_schema.v2_metadata(),
                "outputs": [
                    {"name": output.name, "datatype": output.v2_datatype, "shape": output.shape}
                ],
                "parameters": {
                    "uri": model.uri,
                    "resolved_uri": model.reference.resolved_uri,
                    "runtime": model.runtime.as_dict(),
                },
            },
        )

    async def v2_model_ready(self, call: Call) -> Response:
        self._check_model(call, need_ready=False)
        ready = self.model.ready
        return _json(200 if ready else 503, {"name": self.model.name, "ready": ready})

    async def v1_models(self, call: Call) -> Response:
        return _json(200, {"models": [self.model.name]})

    async def v1_model(self, call: Call) -> Response:
        self._check_model(call, need_ready=False)
        return _json(200, {"name": self.model.name, "ready": self.model.ready})

    async def version(self, call: Call) -> Response:
        return _json(
            200,
            {
                "server": {"name": SERVER_NAME, "version": __version__, "pid": os.getpid()},
                "model": self.model.describe(),
                "runtime": self.model.runtime.as_dict(),
                "load_seconds": self.model.load_seconds,
                "load_error": self.model.load_error,
            },
        )

    async def openapi(self, call: Call) -> Response:
        """The three protocols, their bodies described from the model (once it is loaded)."""
        return _json(200, openapi_document(self.model.name, self.model.input_schema))

    async def drift_window(self, call: Call) -> Response:
        """The drift window's raw counts (mergeable over replicas) and this server's scores
        (this Pod's, over all its workers)."""
        if self.drift is None:
            self._require_ready()
            raise Conflict(self.drift_error or "drift monitoring is off (MLCYCLE_DRIFT)")
        window = self.drift.window() if self.pod_drift is None else self.pod_drift.window()
        self.metrics.drift_scored(window.scores)
        return _json(200, window.to_wire())

    async def prometheus(self, call: Call) -> Response:
        if self.pod_drift is not None:
            self.metrics.drift_scored(self.pod_drift.window().scores)
        elif self.drift is not None:
            self.metrics.drift_scored(self.drift.scores())
        return Response(200, self.metrics.exposition(), content_type=CONTENT_TYPE_LATEST.encode())


def create_app(
    model: Model,
    settings: ServerSettings | None = None,
    on_load_error: Callable[[BaseException], None] | None = None,
) -> ServingApp:
    """The ASGI app serving `model` (loaded now or, if not yet, at start-up)."""
    return ServingApp(model, settings or ServerSettings(model_uri=model.uri), on_load_error)
