"""The append pipeline: accepted updates go to the log in batches and are relayed once
durable, to local members first and then to other processes."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connections

from collab.metrics import APPEND_BATCH, APPEND_SECONDS, RELAY_SECONDS
from collab.realtime.appender import Appender
from collab.realtime.bus import Bus
from collab.realtime.compaction import maybe_compact
from collab.realtime.rooms import Connection, Room, deliver
from collab.sync.protocol import update_message_of
from events.services import NewEvent
from events.storage import LogWriter, checkpoint, on_writer_connection

logger = logging.getLogger(__name__)

R = TypeVar("R")
# What a log write returns: seqs (the writer thread) or, on the loop's quick path, maybe None.
W = TypeVar("W", list[int], list[int] | None)

# How often the SQLite WAL is checkpointed while rooms are open.
_CHECKPOINT_SECONDS = 1.0

RoomCallback = Callable[[Room], Awaitable[None]]
RoomFailure = Callable[[Room, BaseException], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Accepted:
    """An update accepted from a connection, on its way to the log."""

    room: Room
    sender: Connection | None
    event: NewEvent
    # perf_counter() when it was accepted: relay latency is measured from here.
    accepted_at: float = 0.0


def _events(batch: Sequence[Accepted]) -> list[NewEvent]:
    """The events of a batch of accepted updates."""
    return [item.event for item in batch]


def _timed(write: Callable[[list[NewEvent]], W]) -> Callable[[Sequence[Accepted]], W]:
    """`write` for a batch of accepted updates, its size and time recorded when it wrote."""

    def timed(batch: Sequence[Accepted]) -> W:
        started = time.perf_counter()
        seqs = write(_events(batch))
        if seqs is not None:
            APPEND_SECONDS.observe(time.perf_counter() - started)
            APPEND_BATCH.observe(len(batch))
        return seqs

    return timed


def _timed_async(
    write: Callable[[list[NewEvent]], Awaitable[list[int] | None]],
) -> Callable[[Sequence[Accepted]], Awaitable[list[int] | None]]:
    """`_timed` for an awaitable write."""

    async def timed(batch: Sequence[Accepted]) -> list[int] | None:
        started = time.perf_counter()
        seqs = await write(_events(batch))
        if seqs is not None:
            APPEND_SECONDS.observe(time.perf_counter() - started)
            APPEND_BATCH.observe(len(batch))
        return seqs

    return timed


async def _relay(room: Room, items: Sequence[Accepted]) -> None:
    """Send a room's part of a durable batch to its local members: one frame each, holding
    the updates merged, and none of a member's own."""
    if len(items) == 1:
        item = items[0]
        await room.broadcast(update_message_of([item.event.update]), exclude=item.sender)
        return
    everything = update_message_of([item.event.update for item in items])
    # A sender gets the others' updates only; computed once per sender in the batch.
    own: dict[Connection, bytes | None] = {}
    for sender in {item.sender for item in items}:
        if sender is not None:
            others = [item.event.update for item in items if item.sender is not sender]
            own[sender] = update_message_of(others) if others else None
    for member in list(room.members):
        frame = own.get(member, everything)
        if frame is not None:
            await deliver(member, frame)


class AppendPipeline:
    """Group-commits accepted updates on one writer thread and relays each batch once durable.

    `relayed` runs for each room once its part of a batch is out (the hub unloads idle rooms
    there); `refused` runs for each room whose updates the log would not take.
    """

    def __init__(self, *, bus: Bus | None, relayed: RoomCallback, refused: RoomFailure) -> None:
        self.log = LogWriter()
        self._bus = bus
        self._relayed = relayed
        self._refused = refused
        self.appender: Appender[Accepted] = Appender(
            write=_timed(self.log.append),
            write_now=_timed(self.log.append_now) if self.log.appends_now else None,
            write_async=_timed_async(self.log.append_async) if self.log.appends_async else None,
            on_durable=self._on_durable,
            on_failed=self._on_failed,
            batch_max=settings.PALIMPSEST_APPEND_BATCH_MAX,
            queue_max=settings.PALIMPSEST_APPEND_QUEUE_MAX,
            queue_max_bytes=settings.PALIMPSEST_APPEND_QUEUE_BYTES,
        )

    async def submit(self, room: Room, sender: Connection, event: NewEvent) -> None:
        """Queue an update already applied to the replica; it is relayed once durable."""
        room.accept()
        item = Accepted(room, sender, event, time.perf_counter())
        await self.appender.submit(item, len(event.update))

    async def write(self, fn: Callable[..., R], /, **kwargs: Any) -> R:
        """Run a database write on the appender's thread, after the appends queued there.

        One thread writes for the whole process: with SQLite a second writer makes the
        appender wait for the database lock, and SQLite's busy handler sleeps whole
        milliseconds at a time (measured: first keystrokes after a burst of joins took
        hundreds of ms while presence rows were written from another thread).
        """
        loop = asyncio.get_running_loop()
        call = functools.partial(on_writer_connection, functools.partial(fn, **kwargs))
        return await loop.run_in_executor(self.appender.executor, call)

    async def _on_durable(self, batch: Sequence[Accepted], seqs: list[int]) -> None:
        """Relay a committed batch to local members and other processes, in seq order: each
        room's updates in one frame per member."""
        by_room: dict[Room, list[tuple[Accepted, int]]] = {}
        outgoing: dict[uuid.UUID, list[tuple[int, bytes]]] = {}
        for item, seq in zip(batch, seqs, strict=True):
            by_room.setdefault(item.room, []).append((item, seq))
        for room, numbered in by_room.items():
            items = [item for item, _ in numbered]
            for _, seq in numbered:
                room.settle()
                room.seqs.mark(seq)
            await _relay(room, items)
            relayed_at = time.perf_counter()
            for item in items:
                RELAY_SECONDS.observe(relayed_at - item.accepted_at)
            outgoing[room.document_id] = [(seq, item.event.update) for item, seq in numbered]
            maybe_compact(room)
            await self._relayed(room)
        if self._bus is not None:
            await self._bus.publish_updates(outgoing)

    async def _on_failed(self, batch: Sequence[Accepted], exc: BaseException) -> None:
        """The log refused these updates: their rooms are reset, so everyone resyncs."""
        self.log.forget_heads()
        rooms = {item.room for item in batch}
        for item in batch:
            item.room.settle()
        for room in rooms:
            await self._refused(room, exc)

    async def checkpoint_loop(self) -> None:
        """Fold the SQLite WAL into the database off the append path."""
        while True:
            await asyncio.sleep(_CHECKPOINT_SECONDS)
            try:
                await database_sync_to_async(checkpoint)()
            except Exception:
                logger.warning("SQLite checkpoint failed", exc_info=True)

    async def drain(self) -> None:
        """Wait until everything accepted so far is durable and relayed (or refused)."""
        await self.appender.drain()

    async def close(self) -> None:
        """Release the writer thread's connection and the loop's own one."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.appender.executor, connections.close_all)
        self.appender.executor.shutdown(wait=False)
        self.log.close()
        await self.log.aclose()
