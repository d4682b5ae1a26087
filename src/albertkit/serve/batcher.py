"""Micro-batching: items from concurrent requests are gathered into one call of a batch function."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class MicroBatcher(Generic[Item, Result]):
    """Queue requests' items and run `run_batch` on up to `max_batch` of them at a time, off the event loop.

    The worker takes the first waiting request, then keeps collecting requests for at most `max_wait_ms`
    (or until `max_batch` items), so concurrent clients share one forward pass. `forward_passes` and
    `items_done` count the calls and the items they handled.
    """

    def __init__(
        self,
        run_batch: Callable[[list[Item]], list[Result]],
        executor: Executor | None = None,
        max_batch: int = 64,
        max_wait_ms: float = 5.0,
    ):
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.run_batch = run_batch
        self.executor = executor
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000
        self.forward_passes = 0
        self.items_done = 0
        self._queue: asyncio.Queue[tuple[list[Item], asyncio.Future[list[Result]]]] | None = None
        self._worker: asyncio.Task[None] | None = None

    async def submit(self, items: list[Item]) -> list[Result]:
        """The results for `items`, in their order, once a batch holding them has run."""
        loop = asyncio.get_running_loop()
        self._ensure_worker(loop)
        future: asyncio.Future[list[Result]] = loop.create_future()
        assert self._queue is not None
        await self._queue.put((items, future))
        return await future

    def _ensure_worker(self, loop: asyncio.AbstractEventLoop) -> None:
        # Started lazily so the batcher works in whichever event loop serves the app.
        if self._worker is None or self._worker.done() or self._worker.get_loop() is not loop:
            self._queue = asyncio.Queue()
            self._worker = loop.create_task(self._work(self._queue))

    async def stop(self) -> None:
        """Cancel the worker (requests still queued are left unanswered)."""
        if self._worker is not None and not self._worker.done():
            self._worker.cancel()
            try:
                await self._worker
            except asyncio.CancelledError:
                pass
        self._worker = None

    async def _work(self, queue: asyncio.Queue[tuple[list[Item], asyncio.Future[list[Result]]]]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await queue.get()]
            count = len(batch[0][0])
            deadline = loop.time() + self.max_wait
            while count < self.max_batch:
                if queue.empty():
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    try:
                        request = await asyncio.wait_for(queue.get(), remaining)
                    except TimeoutError:
                        break
                else:
                    request = queue.get_nowait()
                batch.append(request)
                count += len(request[0])
            await self._run(loop, batch)

    async def _run(
        self, loop: asyncio.AbstractEventLoop, batch: list[tuple[list[Item], asyncio.Future[list[Result]]]]
    ) -> None:
        items = [item for request_items, _ in batch for item in request_items]
        try:
            results: list[Any] = []
            for start in range(0, len(items), self.max_batch):  # one oversized request runs in max_batch slices
                results += await loop.run_in_executor(self.executor, self.run_batch, items[start:start + self.max_batch])
                self.forward_passes += 1
        except Exception as err:  # a failing batch fails its requests, never the worker
            for _, future in batch:
                if not future.done():
                    future.set_exception(err)
            return
        self.items_done += len(items)
        start = 0
        for request_items, future in batch:
            if not future.done():  # a client that went away has a cancelled future
                future.set_result(results[start:start + len(request_items)])
            start += len(request_items)
