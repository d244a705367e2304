"""Micro-batching: several concurrent scans share one model call.

Requests decode and hash in their own worker threads, then hand the undecided
item here. The batcher waits up to `window_s` for others (or until
`max_batch` are waiting) and runs `finish(batch)` in ONE dedicated model
thread, so the event loop never blocks and the model sees full batches under
load. While one batch runs, the next one gathers. No FastAPI here: it is plain
asyncio, used by the media gate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class MicroBatcher(Generic[T, R]):
    """Queue items, run `finish` on batches in one thread, resolve each caller's future."""

    def __init__(
        self,
        finish: Callable[[Sequence[T]], list[R]],
        *,
        window_s: float,
        max_batch: int,
        on_depth: Callable[[int], None] | None = None,
    ) -> None:
        self.finish = finish
        self.window_s = window_s
        self.max_batch = max_batch
        self.on_depth = on_depth
        self.calls = 0
        self._queue: asyncio.Queue[tuple[T, asyncio.Future[R]]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._pool: ThreadPoolExecutor | None = None

    @property
    def depth(self) -> int:
        return 0 if self._queue is None else self._queue.qsize()

    def start(self) -> None:
        """Start the batching task on the running loop (idempotent)."""
        if self._task is not None and not self._task.done():
            return
        self._queue = asyncio.Queue()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="warden-model")
        self._task = asyncio.get_running_loop().create_task(self._run(), name="warden-batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    async def submit(self, item: T) -> R:
        """The result of `finish` for this item, computed in a shared batch."""
        self.start()
        assert self._queue is not None
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        await self._queue.put((item, future))
        self._report()
        return await future

    def _report(self) -> None:
        if self.on_depth is not None:
            self.on_depth(self.depth)

    async def _gather(self) -> list[tuple[T, asyncio.Future[R]]]:
        assert self._queue is not None
        batch = [await self._queue.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.window_s
        while len(batch) < self.max_batch:
            remaining = deadline - loop.time()
            if remaining <= 0:
                while len(batch) < self.max_batch and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
        self._report()
        return [(item, fut) for item, fut in batch if not fut.done()]

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._gather()
            if not batch:
                continue
            self.calls += 1
            try:
                results = await loop.run_in_executor(
                    self._pool, self.finish, [item for item, _ in batch]
                )
            except Exception as exc:  # finish() handles model errors; this is a bug guard
                log.exception("batch of %d failed", len(batch))
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(exc)
                continue
            for (_, fut), result in zip(batch, results, strict=True):
                if not fut.done():
                    fut.set_result(result)
