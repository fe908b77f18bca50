"""The append pipeline: accepted updates go to the log in batches and are relayed once
durable, to local members first and then to other processes."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connections

from collab.realtime.appender import Appender
from collab.realtime.bus import Bus
from collab.realtime.compaction import maybe_compact
from collab.realtime.rooms import Connection, Room
from collab.sync.protocol import create_update_message
from events.services import NewEvent
from events.storage import LogWriter, checkpoint, on_writer_connection

logger = logging.getLogger(__name__)

R = TypeVar("R")

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


def _events(batch: Sequence[Accepted]) -> list[NewEvent]:
    """The events of a batch of accepted updates."""
    return [item.event for item in batch]


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
            write=lambda batch: self.log.append(_events(batch)),
            write_now=(lambda batch: self.log.append_now(_events(batch)))
            if self.log.appends_now
            else None,
            on_durable=self._on_durable,
            on_failed=self._on_failed,
            batch_max=settings.PALIMPSEST_APPEND_BATCH_MAX,
            queue_max=settings.PALIMPSEST_APPEND_QUEUE_MAX,
            queue_max_bytes=settings.PALIMPSEST_APPEND_QUEUE_BYTES,
        )

    async def submit(self, room: Room, sender: Connection, event: NewEvent) -> None:
        """Queue an update already applied to the replica; it is relayed once durable."""
        room.accept()
        await self.appender.submit(Accepted(room, sender, event), len(event.update))

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
        """Relay a committed batch to local members and other processes, in seq order."""
        outgoing: dict[Room, list[tuple[int, bytes]]] = {}
        for item, seq in zip(batch, seqs, strict=True):
            room = item.room
            room.settle()
            room.seqs.mark(seq)
            await room.broadcast(create_update_message(item.event.update), exclude=item.sender)
            outgoing.setdefault(room, []).append((seq, item.event.update))
        for room, events in outgoing.items():
            maybe_compact(room)
            if self._bus is not None:
                await self._bus.publish_room(
                    room.document_id, {"type": "doc.updates", "events": events}
                )
            await self._relayed(room)

    async def _on_failed(self, batch: Sequence[Accepted], exc: BaseException) -> None:
        """The log refused these updates: their rooms are reset, so everyone resyncs."""
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
