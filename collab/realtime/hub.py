"""The process's live rooms: their lifecycle, and the parts each live document uses.

Where the rest lives: the append pipeline (`pipeline`), presence (`presence`), the awareness
relay (`awareness`), the cross-process bus (`bus`) and catch-up from the log (`catchup`).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from channels import DEFAULT_CHANNEL_LAYER
from channels.db import database_sync_to_async
from channels.layers import channel_layers, get_channel_layer
from django.conf import settings

from collab.metrics import APPEND_QUEUE, BUS_OUTBOX, ROOMS, SOCKETS
from collab.notify import attach_loop, layer_replaced, subscribe_rooms
from collab.realtime.awareness import AwarenessRelay
from collab.realtime.bus import Bus
from collab.realtime.catchup import CatchUp
from collab.realtime.claims import Claims
from collab.realtime.codes import CLOSE_STORE_FAILED
from collab.realtime.compaction import maybe_compact
from collab.realtime.pipeline import AppendPipeline
from collab.realtime.presence import Presence
from collab.realtime.rooms import Connection, Room, SeqTracker, log_ids
from collab.realtime.tokens import tokens
from collab.services import Admission
from collab.sync.protocol import create_update_message
from collab.sync.replica import ParkedLimits, Replica
from events.authors import client_owners
from events.selectors import document_replay, events_after
from events.services import NewEvent

logger = logging.getLogger(__name__)

R = TypeVar("R")


class Hub:
    """Everything live in one process (one per event loop, so tests get a fresh one)."""

    def __init__(self) -> None:
        self.rooms: dict[uuid.UUID, Room] = {}
        self.claims = Claims()
        layer = get_channel_layer()
        # Only several processes need the layer for document traffic; within one process every
        # member is local, and going through the layer measured ~100x slower at p99.
        self.bus = (
            Bus(layer, self._on_remote, remake=_fresh_layer, replaced=layer_replaced)
            if settings.REDIS_URL and layer
            else None
        )
        self.pipeline = AppendPipeline(
            bus=self.bus, relayed=self._unload_if_idle, refused=self._close_room
        )
        self.presence = Presence(self.pipeline.write, self._live_connections)
        self.awareness = AwarenessRelay(self.bus)
        self.catchup = CatchUp(self.rooms)
        self._background: list[asyncio.Task[None]] = []
        # Replica rebuilds in flight (the loop keeps only weak references to tasks).
        self._rebuilds: set[asyncio.Task[None]] = set()

    # -- what the consumer calls -----------------------------------------------------------

    def count_connection(self, user_id: int) -> bool:
        """Count a new socket of this user's; False (and not counted) when over the cap."""
        return self.presence.count_connection(user_id)

    def uncount_connection(self, user_id: int) -> None:
        """A socket counted by `count_connection` is gone."""
        self.presence.uncount_connection(user_id)

    async def admit(self, admission: Admission) -> str | None:
        """A handshake's role on its document, with its presence row opened (None: refused)."""
        return await self.presence.admit(admission)

    def note_clients(self, connection_id: str, client_ids: list[int]) -> None:
        """Record, soon, which awareness ids a connection speaks for."""
        self.presence.note_clients(connection_id, client_ids)

    async def write(self, fn: Callable[..., R], /, **kwargs: Any) -> R:
        """Run a database write on the process's writer thread, after its queued appends."""
        return await self.pipeline.write(fn, **kwargs)

    async def submit(self, room: Room, sender: Connection, event: NewEvent) -> None:
        """Queue an update already applied to the replica; it is relayed once durable."""
        await self.pipeline.submit(room, sender, event)

    def relay_awareness(self, room: Room, sender: Connection | None, update: bytes) -> None:
        """Relay a checked awareness update to the room's other members, soon and merged."""
        self.awareness.relay(room, sender, update)

    async def catch_up(self) -> None:
        """Apply every logged event newer than what each ready room has seen."""
        await self.catchup.all_rooms()

    def observe(self) -> None:
        """Set the gauges of what is live here now (a scrape asks)."""
        ROOMS.set(len(self.rooms))
        SOCKETS.set(sum(len(room.members) for room in self.rooms.values()))
        APPEND_QUEUE.set(self.pipeline.appender.queued)
        BUS_OUTBOX.set(0 if self.bus is None else self.bus.outbox)

    # -- rooms -----------------------------------------------------------------------------

    async def join(self, connection: Connection, document_id: uuid.UUID) -> Room:
        """Add a connection to its document's room, loading the room on first use."""
        room = self.rooms.get(document_id)
        if room is None or room.closed:
            room = Room(document_id, replica=Replica(_parked_limits()))
            self.rooms[document_id] = room
            room.members.add(connection)
            self._start_background()
            try:
                await self._load(room)
            except BaseException as exc:
                room.closed = True
                self.rooms.pop(document_id, None)
                room.ready.set_exception(exc)
                raise
            room.ready.set_result(None)
        else:
            room.members.add(connection)
            await asyncio.shield(room.ready)
        return room

    async def _load(self, room: Room) -> None:
        """Subscribe first, then read the log, so nothing published in between is missed."""
        if self.bus is not None:
            await self.bus.follow(room.document_id, self._is_open(room.document_id))
        # Before the log: an id claimed in between has items in the replica, which makes a
        # socket writing under it ask the database (consumer._foreign_writer).
        room.writers = await database_sync_to_async(client_owners)(document_id=room.document_id)
        replay = await database_sync_to_async(document_replay)(document_id=room.document_id)
        room.replica.load(replay.updates)
        room.seqs.contiguous = replay.head
        room.compacted_to = replay.snapshot_seq
        maybe_compact(room)

    async def leave(self, connection: Connection, room: Room) -> None:
        """Remove a connection; tell the others its carets are gone."""
        room.members.discard(connection)
        gone = [cid for cid, owner in room.awareness_owner.items() if owner is connection]
        for cid in gone:
            del room.awareness_owner[cid]
        self.awareness.forget(room, gone, connection)
        await self._unload_if_idle(room)

    async def _unload_if_idle(self, room: Room) -> None:
        """Schedule an idle room's unloading; until then a reconnect costs no log replay."""
        if not room.idle or room.closed:
            return
        loop = asyncio.get_running_loop()
        room.idle_since = loop.time()
        keep = settings.PALIMPSEST_ROOM_IDLE_SECONDS
        if keep > 0:
            loop.call_later(keep, lambda: loop.create_task(self._unload_now(room, keep)))
        else:
            await self._unload_now(room, 0)

    async def _unload_now(self, room: Room, idle_for: float) -> None:
        """Unload the room if it has stayed idle for `idle_for` seconds."""
        loop = asyncio.get_running_loop()
        if not room.idle or room.closed or loop.time() - room.idle_since < idle_for - 0.01:
            return
        room.closed = True
        if self.rooms.get(room.document_id) is room:
            del self.rooms[room.document_id]
        if self.bus is not None:
            await self.bus.follow(room.document_id, self._is_open(room.document_id))

    async def _close_room(self, room: Room, exc: BaseException) -> None:
        """Drop a room whose replica is not the log's: everyone reconnects and resyncs."""
        logger.error("closing room %s: %s", room.document_id, exc, extra=log_ids(room.document_id))
        room.closed = True
        if self.rooms.get(room.document_id) is room:
            del self.rooms[room.document_id]
        for member in list(room.members):
            await member.close_with(CLOSE_STORE_FAILED, "edit could not be stored; retrying")

    def rebuild(self, room: Room) -> None:
        """Rebuild a room's replica from the log; updates and answers wait until it is done.

        For a replica yrs may hold part of a refused update in (a panic part-way, or structs
        parked past the bound): what was refused is in no log, so the log's state is the truth.
        """
        if room.rebuilding is not None or room.closed:
            return
        room.rebuilding = asyncio.get_running_loop().create_future()
        task = asyncio.get_running_loop().create_task(self._rebuild(room, room.rebuilding))
        self._rebuilds.add(task)
        task.add_done_callback(self._rebuilds.discard)

    async def _rebuild(self, room: Room, done: asyncio.Future[None]) -> None:
        """Wait for accepted updates to be durable, then reload the replica from the log."""
        try:
            await room.all_settled()
            seen = room.seqs
            replay = await database_sync_to_async(document_replay)(document_id=room.document_id)
            room.replica.reset(replay.updates)
            room.seqs = SeqTracker(contiguous=replay.head)
            logger.warning("rebuilt the replica of %s from the log", room.document_id)
        except Exception as exc:
            await self._close_room(room, exc)
            return
        finally:
            room.rebuilding = None
            done.set_result(None)
        # Events logged by others while the replica was rebuilt (another process, a restore)
        # are in it now, or newer; members get those they were not sent yet.
        logged = await database_sync_to_async(events_after)(
            document_id=room.document_id, after_seq=seen.contiguous
        )
        for seq, update in logged:
            if seq > replay.head:
                await self.catchup.apply_logged(room, [(seq, update)])
            elif seq not in seen.ahead:
                await room.broadcast(create_update_message(update))

    async def _bus_loop(self) -> None:
        """Now and then: check the bus still delivers (else it starts over on a new layer),
        and subscribe the ready rooms the layer did not take (it was down, or silent). Apart
        from catch-up, which a silent layer must not hold up."""
        while True:
            await asyncio.sleep(settings.PALIMPSEST_CATCHUP_SECONDS)
            try:
                await self._refollow()
            except Exception:
                logger.warning("checking the bus failed", exc_info=True)

    async def _refollow(self) -> None:
        """One round of `_bus_loop`."""
        if self.bus is None:
            return
        await self.bus.check()
        for room in [r for r in self.rooms.values() if r.ready.done() and not r.closed]:
            if not self.bus.subscribed(room.document_id):
                await self.bus.follow(room.document_id, self._is_open(room.document_id))

    def _is_open(self, document_id: uuid.UUID) -> Callable[[], bool]:
        """Whether the document has a room here, asked when its subscription is settled."""
        return lambda: document_id in self.rooms

    def _live_connections(self) -> list[str]:
        """Connection ids of every member of every room in this process."""
        return [m.connection_id for room in self.rooms.values() for m in room.members]

    # -- group messages --------------------------------------------------------------------

    async def on_room_message(self, message: dict[str, Any]) -> None:
        """A message for a document's rooms from a service in this process."""
        await self._dispatch(message, _FROM_SERVICES)

    async def _on_remote(self, message: dict[str, Any]) -> None:
        """Another process's durable updates, awareness or service messages, for a ready room."""
        if message.get("type") == "rooms.updates":
            await self._rooms_updates(message)
            return
        await self._dispatch(message, _FROM_PROCESSES, ready=True)

    async def _rooms_updates(self, message: dict[str, Any]) -> None:
        """Another process's durable batch: each ready room here applies and relays its part."""
        rooms = message.get("rooms")
        if not isinstance(rooms, dict):
            return
        for doc_hex, events in rooms.items():
            try:
                room = self.rooms.get(uuid.UUID(hex=str(doc_hex)))
            except ValueError:
                continue
            if room is not None and not room.closed and room.ready.done():
                await self.catchup.apply_logged(room, [(int(s), bytes(u)) for s, u in events])

    async def _dispatch(
        self, message: dict[str, Any], kinds: frozenset[str], *, ready: bool = False
    ) -> None:
        """Hand a group message to its handler, named after its type as Channels does:
        `doc.catchup` → `doc_catchup(room, message)`. Unknown types and rooms are ignored."""
        kind = message.get("type")
        if kind not in kinds:
            return
        try:
            document_id = uuid.UUID(hex=str(message.get("doc")))
        except ValueError:
            return
        room = self.rooms.get(document_id)
        if room is None or room.closed or (ready and not room.ready.done()):
            return
        await getattr(self, str(kind).replace(".", "_"))(room, message)

    async def doc_catchup(self, room: Room, message: dict[str, Any]) -> None:
        """An event appended outside the rooms (a restore, say): apply and relay it."""
        if room.ready.done():
            await self.catchup.room(room)

    async def doc_access(self, room: Room, message: dict[str, Any]) -> None:
        """A user's rights changed: their sockets in the room get them as they are now."""
        ended = message.get("session")
        user_id = message.get("user")
        if isinstance(user_id, int):
            tokens.forget_user(user_id)  # a revoked token is looked up afresh
        for member in [m for m in list(room.members) if m.user_id == user_id]:
            await member.recheck_access(ended if isinstance(ended, str) else None)

    async def doc_purged(self, room: Room, message: dict[str, Any]) -> None:
        """Purged sessions lose their carets."""
        # A purged client id now spoken for by a live local connection is not a ghost.
        ids = [
            int(cid)
            for cid in message.get("clients", [])
            if isinstance(cid, int) and cid not in room.awareness_owner
        ]
        self.awareness.forget(room, ids, "purge")

    async def doc_awareness(self, room: Room, message: dict[str, Any]) -> None:
        """Another process's awareness frame, already checked there."""
        await self.awareness.from_other_process(room, bytes(message["frame"]))

    # -- background ------------------------------------------------------------------------

    def _start_background(self) -> None:
        """Start heartbeats, the WAL checkpoints and (with several processes) catch-up, once."""
        if self._background:
            return
        loop = asyncio.get_running_loop()
        self._background.append(loop.create_task(self.presence.heartbeat_loop()))
        if self.bus is not None:
            self._background.append(loop.create_task(self.catchup.loop()))
            self._background.append(loop.create_task(self._bus_loop()))
        if self.pipeline.log.needs_checkpoints:
            self._background.append(loop.create_task(self.pipeline.checkpoint_loop()))

    async def shutdown(self) -> None:
        """Finish pending appends, stop background work and release the writer's connection."""
        await self.pipeline.drain()
        await self.presence.drain()
        await self.claims.drain()
        for task in self._background:
            task.cancel()
        if self.bus is not None:
            await self.bus.drain(within=1.0)
            await self.bus.close()
        await self.pipeline.close()


def _fresh_layer() -> Any:
    """A new channel layer from the settings, installed as the process's: what subscribes
    from now on (the bus, new notification sockets) does so on it."""
    layer = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)
    channel_layers.set(DEFAULT_CHANNEL_LAYER, layer)
    return layer


def _parked_limits() -> ParkedLimits:
    """The bound on a live document's parked updates, from settings."""
    return ParkedLimits(
        max_updates=settings.PALIMPSEST_PARKED_MAX_UPDATES,
        max_bytes=settings.PALIMPSEST_PARKED_MAX_BYTES,
    )


# Group message types each source may send (handlers are the Hub's methods of the same name).
_FROM_SERVICES = frozenset({"doc.catchup", "doc.access", "doc.purged"})
_FROM_PROCESSES = _FROM_SERVICES | {"doc.awareness"}

_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()


def current_hub() -> Hub:
    """The hub of the running event loop."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = Hub()
        attach_loop()  # tasks' notifications for this process's sockets go to this loop
    return hub


def running_hub() -> Hub | None:
    """The running loop's hub if it has one (without creating it)."""
    return _hubs.get(asyncio.get_running_loop())


async def _to_running_hub(message: dict[str, Any]) -> None:
    """A room message published in this process, for the running loop's hub (if any)."""
    hub = running_hub()
    if hub is not None:
        await hub.on_room_message(message)


subscribe_rooms(_to_running_hub)


async def hub_shutdown() -> None:
    """Shut down and forget the running loop's hub (server stop, or a simulated restart)."""
    hub = _hubs.pop(asyncio.get_running_loop(), None)
    if hub is not None:
        await hub.shutdown()
