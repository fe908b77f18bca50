"""Group commit: queue accepted updates, write them in batches, hand them on once durable."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")

WriteBatch = Callable[[Sequence[T]], list[int]]
# Writes a batch on the event loop itself if it can do so at once; None means "use the thread".
WriteNow = Callable[[Sequence[T]], list[int] | None]
# Writes a batch from the event loop, awaiting the database; None means "use the thread".
WriteAsync = Callable[[Sequence[T]], Awaitable[list[int] | None]]
OnDurable = Callable[[Sequence[T], list[int]], Awaitable[None]]
OnFailed = Callable[[Sequence[T], BaseException], Awaitable[None]]

# Transient database trouble (a lock timeout, a reconnect) is retried this often before the
# batch is given up and its rooms are reset; delays in seconds.
_RETRY_DELAYS = (0.05, 0.5, 2.0)


class Appender(Generic[T]):
    """Writes queued items in batches on one thread, in order; relays each batch when durable.

    The write of batch N+1 overlaps the relay of batch N, so a fast writer is not held to one
    commit per update, and nothing is handed to `on_durable` before its commit returned.
    With `write_now`, a batch is first offered to the event loop's own quick path, and with
    `write_async` to an awaitable one; only what those decline goes to the thread. Either way
    one batch is in flight at a time, in order.
    """

    def __init__(
        self,
        *,
        write: WriteBatch[T],
        on_durable: OnDurable[T],
        on_failed: OnFailed[T],
        batch_max: int,
        queue_max: int,
        queue_max_bytes: int = 1 << 62,
        write_now: WriteNow[T] | None = None,
        write_async: WriteAsync[T] | None = None,
    ) -> None:
        self._write = write
        self._write_now = write_now
        self._write_async = write_async
        self._on_durable = on_durable
        self._on_failed = on_failed
        self._batch_max = batch_max
        self._queue_max = queue_max
        # Bytes as well as items: a stalled database with large updates queued would otherwise
        # hold queue_max times the largest update.
        self._queue_max_bytes = queue_max_bytes
        self._queued_bytes = 0
        self._queue: deque[tuple[T, int]] = deque()
        self._space = asyncio.Event()
        self._space.set()
        # One thread: batches commit in the order they were queued, on one DB connection.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="appender")
        self._task: asyncio.Task[None] | None = None

    def _full(self) -> bool:
        """Over a bound (one item always fits, however large)."""
        return len(self._queue) >= self._queue_max or (
            bool(self._queue) and self._queued_bytes >= self._queue_max_bytes
        )

    async def submit(self, item: T, size: int = 0) -> None:
        """Queue an item of `size` bytes; waits while the queue is full, which pauses the
        sender's reads."""
        while self._full():
            self._space.clear()
            await self._space.wait()
        self._queue.append((item, size))
        self._queued_bytes += size
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    @property
    def queued(self) -> int:
        """Items waiting to be written."""
        return len(self._queue)

    @property
    def executor(self) -> ThreadPoolExecutor:
        """The writer thread, for work that must run on its connection (shutdown)."""
        return self._executor

    async def drain(self) -> None:
        """Wait until everything queued so far is durable and relayed."""
        while self._task is not None and not self._task.done():
            await asyncio.wait({self._task})

    def _take(self) -> list[T]:
        """Pop up to one batch from the queue."""
        count = min(len(self._queue), self._batch_max)
        batch = []
        for _ in range(count):
            item, size = self._queue.popleft()
            self._queued_bytes -= size
            batch.append(item)
        if not self._full():
            self._space.set()
        return batch

    async def _run(self) -> None:
        """Write batches until the queue is empty, relaying each after its commit."""
        loop = asyncio.get_running_loop()
        previous: tuple[list[T], list[int]] | None = None
        while self._queue or previous is not None:
            batch = self._take()
            if batch and self._write_now is not None:
                if previous is not None:
                    await self._on_durable(*previous)
                    previous = None
                seqs_now = self._write_now(batch)
                if seqs_now is not None:
                    await self._on_durable(batch, seqs_now)
                    continue
            future = loop.create_task(self._write_batch(batch)) if batch else None
            if previous is not None:
                await self._on_durable(*previous)
                previous = None
            if future is None:
                continue
            try:
                seqs = await future
            except Exception as exc:
                logger.exception("giving up on a batch of %d appends", len(batch))
                await self._on_failed(batch, exc)
                continue
            previous = (batch, seqs)

    async def _write_batch(self, batch: list[T]) -> list[int]:
        """Write one batch: the awaitable path if it takes it, else the writer thread."""
        if self._write_async is not None:
            seqs = await self._write_async(batch)
            if seqs is not None:
                return seqs
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._write_with_retry, batch)

    def _write_with_retry(self, batch: list[T]) -> list[int]:
        """Write one batch on the writer thread, retrying transient failures."""
        for delay in (*_RETRY_DELAYS, None):
            try:
                return self._write(batch)
            except Exception:
                if delay is None:
                    raise
                logger.warning("append of %d events failed; retrying", len(batch), exc_info=True)
                time.sleep(delay)
        raise AssertionError("unreachable")
