"""Micro-batching: concurrent requests share predict calls, each gets its own rows back."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import httpx
import numpy as np
import pytest

from mlcycle_serving.app import create_app
from mlcycle_serving.batching import MicroBatcher
from mlcycle_serving.errors import ModelNotReady
from mlcycle_serving.model import Model
from mlcycle_serving.schema import ColumnKind, InputColumn, InputSchema
from mlcycle_serving.settings import ServerSettings


class SlowPredictor:
    """Takes `delay` seconds per call whatever the rows; returns 10 x the first column."""

    def __init__(self, delay: float = 0.02) -> None:
        self.delay = delay
        self.calls: list[int] = []
        self.threads: set[str] = set()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.calls.append(len(batch))
        self.threads.add(threading.current_thread().name)
        time.sleep(self.delay)
        if (batch[:, 0] < 0).any():
            raise ValueError("negative input")
        return batch[:, 0] * 10


def rows(start: int, count: int = 1) -> np.ndarray:
    return np.arange(start, start + count, dtype=np.float64).reshape(-1, 1) * np.ones((1, 3))


def run_with_batcher(batcher: MicroBatcher, scenario: Any) -> Any:
    async def main() -> Any:
        batcher.start()
        try:
            return await scenario()
        finally:
            await batcher.close()

    return asyncio.run(main())


def test_concurrent_requests_are_merged_and_split_back() -> None:
    predictor = SlowPredictor()
    batcher = MicroBatcher(predictor, max_batch_size=64, max_wait_s=0.002)

    async def scenario() -> list[np.ndarray]:
        return await asyncio.gather(*(batcher.predict(rows(i * 10, 1 + i % 3)) for i in range(30)))

    results = run_with_batcher(batcher, scenario)
    for i, result in enumerate(results):
        assert result.tolist() == (rows(i * 10, 1 + i % 3)[:, 0] * 10).tolist()
    assert sum(predictor.calls) == sum(1 + i % 3 for i in range(30))
    assert len(predictor.calls) <= 3, predictor.calls
    assert predictor.threads == {"predict_0"}  # one dedicated thread, not the event loop


def test_batches_respect_the_row_limit_but_never_split_a_request() -> None:
    predictor = SlowPredictor(delay=0.005)
    batcher = MicroBatcher(predictor, max_batch_size=16, max_wait_s=0.002)

    async def scenario() -> list[np.ndarray]:
        requests = [batcher.predict(rows(i)) for i in range(50)]
        requests.append(batcher.predict(rows(1000, 40)))
        return await asyncio.gather(*requests)

    results = run_with_batcher(batcher, scenario)
    assert results[-1].tolist() == (rows(1000, 40)[:, 0] * 10).tolist()
    assert 40 in predictor.calls
    assert all(size <= 16 for size in predictor.calls if size != 40)
    assert sum(predictor.calls) == 90


def test_an_idle_queue_does_not_wait() -> None:
    predictor = SlowPredictor(delay=0.0)
    batcher = MicroBatcher(predictor, max_batch_size=64, max_wait_s=1.0)

    async def scenario() -> float:
        started = time.perf_counter()
        for i in range(5):  # one at a time: concurrency 1
            assert (await batcher.predict(rows(i))).tolist() == [i * 10.0]
        return time.perf_counter() - started

    assert run_with_batcher(batcher, scenario) < 0.5  # five requests, not five waits of 1 s
    assert predictor.calls == [1, 1, 1, 1, 1]


def test_closed_loop_clients_do_not_wait_out_the_timer() -> None:
    """Eight clients, each sending again once answered: every batch holds all eight and
    goes as soon as the eighth arrives, not when `max_wait_s` runs out."""
    predictor = SlowPredictor(delay=0.001)
    batcher = MicroBatcher(predictor, max_batch_size=64, max_wait_s=1.0)

    async def client(i: int) -> None:
        for k in range(5):
            assert (await batcher.predict(rows(100 * i + k))).tolist() == [(100 * i + k) * 10.0]

    async def scenario() -> float:
        started = time.perf_counter()
        await asyncio.gather(*(client(i) for i in range(8)))
        return time.perf_counter() - started

    assert run_with_batcher(batcher, scenario) < 0.5  # the old batcher waited 1 s per batch
    assert predictor.calls == [8] * 5


def test_a_client_that_leaves_costs_one_wait_at_most() -> None:
    predictor = SlowPredictor(delay=0.001)
    batcher = MicroBatcher(predictor, max_batch_size=64, max_wait_s=0.2)

    async def client(i: int, requests: int) -> None:
        for k in range(requests):
            await batcher.predict(rows(100 * i + k))

    async def scenario() -> float:
        started = time.perf_counter()
        await asyncio.gather(client(0, 1), *(client(i, 6) for i in range(1, 4)))
        return time.perf_counter() - started

    elapsed = run_with_batcher(batcher, scenario)
    assert predictor.calls == [4, 3, 3, 3, 3, 3]
    assert 0.2 <= elapsed < 0.6  # one wait for the client that left, then none


def test_a_failing_request_fails_alone() -> None:
    predictor = SlowPredictor()
    batcher = MicroBatcher(predictor, max_batch_size=64, max_wait_s=0.002)

    async def scenario() -> list[Any]:
        requests = [batcher.predict(rows(i)) for i in range(1, 6)]
        requests.insert(2, batcher.predict(rows(-5)))
        return await asyncio.gather(*requests, return_exceptions=True)

    results = run_with_batcher(batcher, scenario)
    assert isinstance(results[2], ValueError)
    assert [r.tolist() for i, r in enumerate(results) if i != 2] == [
        [10.0 * i] for i in range(1, 6)
    ]


def test_close_finishes_queued_requests_then_refuses_new_ones() -> None:
    predictor = SlowPredictor(delay=0.01)
    batcher = MicroBatcher(predictor, max_batch_size=4, max_wait_s=0.002)

    async def scenario() -> None:
        batcher.start()
        pending = [asyncio.ensure_future(batcher.predict(rows(i))) for i in range(12)]
        await asyncio.sleep(0)  # all twelve are queued
        await batcher.close()
        assert all(task.done() for task in pending)
        assert [task.result().tolist() for task in pending] == [[10.0 * i] for i in range(12)]
        with pytest.raises(ModelNotReady):
            await batcher.predict(rows(0))

    asyncio.run(scenario())
    assert sum(predictor.calls) == 12


class SlowModel(Model):
    """A `Model` over `SlowPredictor`, for batching through the whole app."""

    def __init__(self, predictor: SlowPredictor) -> None:
        super().__init__("memory://slow", name="slow")
        self.ready = True
        self.flavor = "fake"
        self.input_schema = InputSchema(
            columns=tuple(InputColumn(str(i), ColumnKind.NUMBER, "FP64") for i in range(3)),
            named=False,
        )
        self.predictor = predictor

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return self.predictor(batch)


def test_concurrent_http_requests_share_predict_calls() -> None:
    predictor = SlowPredictor(delay=0.03)
    settings = ServerSettings(model_uri="memory://slow", max_batch_size=64, max_batch_wait_ms=2)
    app = create_app(SlowModel(predictor), settings)

    async def scenario() -> None:
        app.batcher.start()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            paths = ["/v2/models/slow/infer", "/v1/models/slow:predict", "/invocations"]

            async def one(i: int) -> None:
                row = [float(i), 1.0, 2.0]
                path = paths[i % 3]
                if path.startswith("/v2"):
                    body: dict[str, Any] = {
                        "inputs": [{"name": "x", "shape": [1, 3], "datatype": "FP64", "data": row}]
                    }
                    response = await client.post(path, json=body)
                    assert response.json()["outputs"][0]["data"] == [i * 10.0]
                else:
                    key = "instances" if path.startswith("/v1") else "inputs"
                    response = await client.post(path, json={key: [row]})
                    assert response.json() == {"predictions": [i * 10.0]}

            await asyncio.gather(*(one(i) for i in range(24)))
        await app.batcher.close()

    asyncio.run(scenario())
    assert sum(predictor.calls) == 24
    assert len(predictor.calls) < 24 / 2, predictor.calls
    metrics = app.metrics.exposition().decode()
    assert "mlcycle_serving_rows_predicted_total 24.0" in metrics
    assert f"mlcycle_serving_batch_requests_count {float(len(predictor.calls))}" in metrics
