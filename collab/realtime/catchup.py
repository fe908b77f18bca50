"""Catch-up: rooms apply logged events they have not seen, whether another process relayed
them or they were missed (the channel layer delivers at most once; the log has everything)."""

from __future__ import annotations

import asyncio
import logging
import uuid

from channels.db import database_sync_to_async
from django.conf import settings

from collab.metrics import CATCHUP_BEHIND, CATCHUP_EVENTS
from collab.realtime.rooms import Room
from collab.sync.protocol import update_message_of
from events.selectors import document_heads, events_after

logger = logging.getLogger(__name__)

# Events read per query when a room catches up: a room far behind (a long outage of the
# bus) is brought up page by page, each applied and relayed before the next is read.
CATCHUP_PAGE = 1000


class CatchUp:
    """Brings this process's rooms up to the log's head."""

    def __init__(self, rooms: dict[uuid.UUID, Room]) -> None:
        self._rooms = rooms

    async def apply_logged(self, room: Room, events: list[tuple[int, bytes]]) -> None:
        """Apply logged events this room has not seen and relay them to every local member,
        in one frame."""
        if room.rebuilding is not None:
            await asyncio.shield(room.rebuilding)  # then the rebuilt replica's seqs apply
        fresh = [update for seq, update in events if room.seqs.mark(seq)]
        if fresh:
            room.replica.load(fresh)
            await room.broadcast(update_message_of(fresh))

    async def room(self, room: Room, head: int | None = None) -> None:
        """Apply and relay the room's logged events it has not seen (up to `head` if given),
        in pages of CATCHUP_PAGE."""
        while not room.closed and (head is None or room.seqs.contiguous < head):
            after = room.seqs.contiguous
            missed = await database_sync_to_async(events_after)(
                document_id=room.document_id, after_seq=after, limit=CATCHUP_PAGE, upto_seq=head
            )
            await self.apply_logged(room, missed)
            CATCHUP_EVENTS.inc(room.seqs.contiguous - after)
            if len(missed) < CATCHUP_PAGE or room.seqs.contiguous == after:
                return

    async def all_rooms(self) -> None:
        """Apply every logged event newer than what each ready room has seen: the heads of
        every open document in one query, then only the events missed."""
        rooms = [r for r in self._rooms.values() if r.ready.done() and not r.closed]
        if not rooms:
            return
        heads = await database_sync_to_async(document_heads)(
            document_ids=[r.document_id for r in rooms]
        )
        CATCHUP_BEHIND.set(
            sum(max(0, heads.get(r.document_id, 0) - r.seqs.contiguous) for r in rooms)
        )
        for room in rooms:
            head = heads.get(room.document_id, 0)
            if head > room.seqs.contiguous:
                await self.room(room, head)

    async def loop(self) -> None:
        """Now and then, fetch from the log whatever the layer did not deliver."""
        while True:
            await asyncio.sleep(settings.PALIMPSEST_CATCHUP_SECONDS)
            try:
                await self.all_rooms()
            except Exception:
                logger.warning("log catch-up failed", exc_info=True)
