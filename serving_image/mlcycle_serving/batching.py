"""Adaptive micro-batching: concurrent requests share one `predict` call.

One asyncio task owns the queue. It takes the first waiting request and every
request already queued behind it, up to `max_batch_size` rows. It then waits (at
most `max_wait_s`) only for as many requests as it has reason to expect: the most
that were in flight at once (queued or being predicted) since the previous batch
began gathering, since clients waiting for answers send again. Once those have
arrived the batch goes at once, so closed-loop clients never wait out the timer,
and at concurrency 1 a request is never delayed. The batch is predicted in one
dedicated thread, so the event loop keeps accepting and decoding requests while
the model works, and those requests form the next batch. Results are split back
per request; if a merged batch fails, its requests are retried one by one so a
bad request fails alone.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from time import perf_counter

import numpy as np

from mlcycle_serving.errors import ModelNotReady

logger = logging.getLogger(__name__)

PredictFn = Callable[[np.ndarray], np.ndarray]
BatchObserver = Callable[[int, int, float], None]
"""Called with (rows, requests, predict seconds) after every predict call."""


@dataclass
class _Pending:
    batch: np.ndarray
    future: asyncio.Future[np.ndarray]


def _predict_all(predict: PredictFn, batches: list[np.ndarray]) -> list[np.ndarray | Exception]:
    """Runs in the predict thread: one call for all, split back by row counts."""
    if len(batches) == 1:
        return [_predict_one(predict, batches[0])]
    try:
        merged = predict(np.concatenate(batches))
    except Exception:
        return [_predict_one(predict, batch) for batch in batches]
    bounds = np.cumsum([len(batch) for batch in batches])[:-1]
    return list(np.split(merged, bounds))


def _predict_one(predict: PredictFn, batch: np.ndarray) -> np.ndarray | Exception:
    try:
        return predict(batch)
    except Exception as exc:
        return exc


class MicroBatcher:
    """Merge concurrent `predict` calls; see the module docstring."""

    def __init__(
        self,
        predict: PredictFn,
        max_batch_size: int = 64,
        max_wait_s: float = 0.002,
        observer: BatchObserver | None = None,
    ) -> None:
        self._predict = predict
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self._observer = observer
        self._queue: deque[_Pending] = deque()
        self._wakeup = asyncio.Event()
        self._closing = False
        self._worker: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._in_flight = 0  # requests queued or being predicted
        self._peak_in_flight = 0  # most in flight at once since the last gathering began

    def start(self) -> None:
        """Start the worker task (call from inside the running event loop)."""
        if self._worker is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")
            self._worker = asyncio.get_running_loop().create_task(self._run(), name="batcher")

    async def predict(self, batch: np.ndarray) -> np.ndarray:
        """Queue one request's rows and wait for its predictions."""
        if self._closing:
            raise ModelNotReady("the server is shutting down")
        if self._worker is None:
            self.start()  # served without a lifespan (some test clients)
        future: asyncio.Future[np.ndarray] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(batch, future))
        self._in_flight += 1
        self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
        self._wakeup.set()
        return await future

    async def close(self) -> None:
        """Stop taking requests, finish every queued one, stop the thread."""
        self._closing = True
        self._wakeup.set()
        if self._worker is not None:
            await self._worker
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    def _take(self, taken: list[_Pending], rows: int) -> int:
        """Move queued requests into `taken` while they fit; return the row count."""
        queue = self._queue
        while queue and (not taken or rows + len(queue[0].batch) <= self.max_batch_size):
            pending = queue.popleft()
            taken.append(pending)
            rows += len(pending.batch)
        return rows

    async def _gather(self) -> list[_Pending]:
        taken: list[_Pending] = []
        rows = self._take(taken, 0)
        expected = self._peak_in_flight
        self._peak_in_flight = self._in_flight
        if self.max_wait_s <= 0 or self._closing:
            return taken
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait_s
        while (
            len(taken) < expected
            and rows < self.max_batch_size
            and not self._queue
            and not self._closing
        ):
            self._wakeup.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                async with asyncio.timeout(remaining):
                    await self._wakeup.wait()
            except TimeoutError:
                break
            rows = self._take(taken, rows)
        return taken

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            taken = await self._gather()
            started = perf_counter()
            try:
                results = await loop.run_in_executor(
                    self._executor, _predict_all, self._predict, [p.batch for p in taken]
                )
            except Exception as exc:  # the executor itself failed
                logger.exception("Batch prediction failed")
                results = [exc] * len(taken)
            self._in_flight -= len(taken)
            if self._observer is not None:
                rows = sum(len(p.batch) for p in taken)
                self._observer(rows, len(taken), perf_counter() - started)
            for pending, result in zip(taken, results, strict=True):
                if pending.future.done():
                    continue  # the client went away
                if isinstance(result, Exception):
                    pending.future.set_exception(result)
                else:
                    pending.future.set_result(result)
