"""Catch-up: rooms apply logged events they have not seen, whether another process relayed
them or they were missed (the channel layer delivers at most once; the log has everything)."""

from __future__ import annotations

import asyncio
import logging
import uuid

from channels.db import database_sync_to_async
from django.conf import settings

from collab.realtime.rooms import Room
from collab.sync.protocol import create_update_message
from events.selectors import document_heads, events_after

logger = logging.getLogger(__name__)


class CatchUp:
    """Brings this process's rooms up to the log's head."""

    def __init__(self, rooms: dict[uuid.UUID, Room]) -> None:
        self._rooms = rooms

    async def apply_logged(self, room: Room, events: list[tuple[int, bytes]]) -> None:
        """Apply logged events this room has not seen and relay them to every local member."""
        if room.rebuilding is not None:
            await asyncio.shield(room.rebuilding)  # then the rebuilt replica's seqs apply
        for seq, update in events:
            if room.seqs.mark(seq):
                room.replica.load((update,))
                await room.broadcast(create_update_message(update))

    async def room(self, room: Room) -> None:
        """Apply and relay the room's logged events it has not seen."""
        missed = await database_sync_to_async(events_after)(
            document_id=room.document_id, after_seq=room.seqs.contiguous
        )
        await self.apply_logged(room, missed)

    async def all_rooms(self) -> None:
        """Apply every logged event newer than what each ready room has seen."""
        rooms = [r for r in self._rooms.values() if r.ready.done() and not r.closed]
        if not rooms:
            return
        heads = await database_sync_to_async(document_heads)(
            document_ids=[r.document_id for r in rooms]
        )
        for room in rooms:
            if heads.get(room.document_id, 0) > room.seqs.contiguous:
                await self.room(room)

    async def loop(self) -> None:
        """Now and then, fetch from the log whatever the layer did not deliver."""
        while True:
            await asyncio.sleep(settings.PALIMPSEST_CATCHUP_SECONDS)
            try:
                await self.all_rooms()
            except Exception:
                logger.warning("log catch-up failed", exc_info=True)
