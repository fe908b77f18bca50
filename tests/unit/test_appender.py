"""Group commit: order, batching, nothing relayed before its write, failures reported."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence

from collab.realtime.appender import Appender


async def test_items_are_relayed_in_order_only_after_their_write() -> None:
    written: list[int] = []
    relayed: list[tuple[int, int]] = []
    batches: list[int] = []
    gate = threading.Event()

    def write(batch: Sequence[int]) -> list[int]:
        gate.wait(5)  # the first write is slow, so later items pile up into one batch
        batches.append(len(batch))
        written.extend(batch)
        return [item * 10 for item in batch]

    async def on_durable(batch: Sequence[int], seqs: list[int]) -> None:
        for item, seq in zip(batch, seqs, strict=True):
            assert item in written, "relayed before it was written"
            relayed.append((item, seq))

    async def on_failed(batch: Sequence[int], exc: BaseException) -> None:
        raise AssertionError("no write fails here")

    appender: Appender[int] = Appender(
        write=write, on_durable=on_durable, on_failed=on_failed, batch_max=100, queue_max=1000
    )
    for item in range(1, 51):
        await appender.submit(item)
    await asyncio.sleep(0.05)
    assert relayed == []
    gate.set()
    await appender.drain()
    assert relayed == [(i, i * 10) for i in range(1, 51)]
    assert len(batches) < 50, "items were not batched"


async def test_a_batch_that_keeps_failing_is_reported_and_later_ones_go_on() -> None:
    failures: list[list[str]] = []
    relayed: list[str] = []

    def write(batch: Sequence[str]) -> list[int]:
        if "poison" in batch:
            raise RuntimeError("disk full")
        return list(range(len(batch)))

    async def on_durable(batch: Sequence[str], seqs: list[int]) -> None:
        relayed.extend(batch)

    async def on_failed(batch: Sequence[str], exc: BaseException) -> None:
        failures.append(list(batch))

    import collab.realtime.appender as module

    delays, module._RETRY_DELAYS = module._RETRY_DELAYS, (0.0, 0.0)
    try:
        appender: Appender[str] = Appender(
            write=write, on_durable=on_durable, on_failed=on_failed, batch_max=1, queue_max=10
        )
        for item in ("a", "poison", "b"):
            await appender.submit(item)
        await appender.drain()
    finally:
        module._RETRY_DELAYS = delays
    assert failures == [["poison"]]
    assert relayed == ["a", "b"]


def _gated(gate: threading.Event, **limits: int) -> Appender[int]:
    """An appender whose writes wait for `gate`, with these queue limits."""

    def write(batch: Sequence[int]) -> list[int]:
        gate.wait(5)
        return list(batch)

    async def on_durable(batch: Sequence[int], seqs: list[int]) -> None:
        return None

    async def on_failed(batch: Sequence[int], exc: BaseException) -> None:
        return None

    return Appender(write=write, on_durable=on_durable, on_failed=on_failed, batch_max=1, **limits)


async def test_a_full_queue_makes_senders_wait() -> None:
    gate = threading.Event()
    appender = _gated(gate, queue_max=2)
    for item in range(3):  # one in flight, two queued
        await appender.submit(item)
    blocked = asyncio.ensure_future(appender.submit(99))
    await asyncio.sleep(0.05)
    assert not blocked.done(), "a sender got past a full queue"
    gate.set()
    await asyncio.wait_for(blocked, 5)
    await appender.drain()


async def test_queued_bytes_are_bounded_too_but_one_large_item_always_fits() -> None:
    gate = threading.Event()
    appender = _gated(gate, queue_max=1000, queue_max_bytes=100)
    await appender.submit(0, 10)  # taken at once: in flight
    await asyncio.sleep(0.05)
    await appender.submit(1, 500)  # over the byte bound alone, but an empty queue takes it
    blocked = asyncio.ensure_future(appender.submit(2, 1))
    await asyncio.sleep(0.05)
    assert not blocked.done(), "a sender got past a queue full of bytes"
    gate.set()
    await asyncio.wait_for(blocked, 5)
    await appender.drain()
