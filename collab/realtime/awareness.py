"""The awareness relay: carets and selections, merged per room over a short window."""

from __future__ import annotations

import asyncio
import logging

from django.conf import settings

from collab.realtime.bus import Bus
from collab.realtime.rooms import Connection, Room, deliver
from collab.sync.protocol import create_awareness_message, merge_awareness_updates, parse_frame

logger = logging.getLogger(__name__)


class AwarenessRelay:
    """Relays checked awareness updates to a room's members and to other processes."""

    def __init__(self, bus: Bus | None) -> None:
        self._bus = bus
        # Relays in flight (the loop keeps only weak references to tasks).
        self._tasks: set[asyncio.Task[None]] = set()

    def relay(self, room: Room, sender: Connection | None, update: bytes) -> None:
        """Relay a checked awareness update to everyone else soon, merged with its neighbours.

        Stock clients renew their awareness every 15 s, all of a room's clients in the same
        moment when they joined together; merging what a room gathers within one short window
        sends each member one frame instead of one per sender (per-frame cost under daphne
        is what bounds the relay).
        """
        room.awareness_outbox.append((sender, update))
        if len(room.awareness_outbox) == 1:
            asyncio.get_running_loop().call_later(
                settings.PALIMPSEST_AWARENESS_RELAY_SECONDS, self._start, room
            )

    def forget(self, room: Room, client_ids: list[int], origin: object) -> None:
        """Remove these awareness ids from the room and tell its members they are gone."""
        removal = room.replica.remove_awareness(client_ids, origin)
        if removal is not None:
            self.relay(room, None, removal)

    async def from_other_process(self, room: Room, frame: bytes) -> None:
        """Another process checked ownership; here its frame is only recorded and passed on."""
        _, relay = room.replica.apply_awareness(parse_frame(frame).payload, "remote", _anyone)
        if relay is not None:
            await room.broadcast(create_awareness_message(relay))

    def _start(self, room: Room) -> None:
        """Run the room's relay as a task kept hold of."""
        task = asyncio.get_running_loop().create_task(self._relay_now(room))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _relay_now(self, room: Room) -> None:
        """Send each member the room's waiting awareness updates but its own, in one frame."""
        outbox, room.awareness_outbox = room.awareness_outbox, []
        if room.closed or not outbox:
            return
        senders = {sender for sender, _ in outbox if sender is not None}
        # One frame per distinct member left out (None: nobody), built once.
        frames: dict[Connection | None, bytes | None] = {}

        def frame_without(excluded: Connection | None) -> bytes | None:
            if excluded not in frames:
                updates = [u for sender, u in outbox if excluded is None or sender is not excluded]
                frames[excluded] = (
                    create_awareness_message(merge_awareness_updates(updates)) if updates else None
                )
            return frames[excluded]

        try:
            for member in list(room.members):
                frame = frame_without(member if member in senders else None)
                if frame is not None:
                    await deliver(member, frame)
            everything = frame_without(None)
            if self._bus is not None and everything is not None:
                await self._bus.publish_room(
                    room.document_id, {"type": "doc.awareness", "frame": everything}
                )
        except Exception:
            logger.warning("relaying awareness in %s failed", room.document_id, exc_info=True)


def _anyone(client_id: int) -> bool:
    """Every client id may be spoken for (the sending process checked)."""
    return True
