"""The process's live rooms: load, accept updates, relay once durable, catch up from the log."""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connections

from collab.notify import attach_loop, document_group, subscribe_rooms
from collab.realtime.appender import Appender
from collab.realtime.bus import Bus
from collab.realtime.codes import CLOSE_STORE_FAILED
from collab.realtime.rooms import Connection, Room, SeqTracker, deliver
from collab.services import presence_set_clients, presence_touch
from collab.sync.protocol import (
    create_awareness_message,
    create_update_message,
    merge_awareness_updates,
    parse_frame,
)
from collab.sync.replica import ParkedLimits, Replica
from events.selectors import document_heads, document_replay, events_after
from events.services import NewEvent
from events.storage import LogWriter, checkpoint, on_writer_connection
from tasks.tasks import compact_document

logger = logging.getLogger(__name__)

R = TypeVar("R")

# How often the SQLite WAL is checkpointed while rooms are open.
_CHECKPOINT_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class Accepted:
    """An update accepted from a connection, on its way to the log."""

    room: Room
    sender: Connection | None
    event: NewEvent


def _events(batch: Sequence[Accepted]) -> list[NewEvent]:
    """The events of a batch of accepted updates."""
    return [item.event for item in batch]


class Hub:
    """Everything live in one process (one per event loop, so tests get a fresh one)."""

    def __init__(self) -> None:
        self.rooms: dict[uuid.UUID, Room] = {}
        self.log = LogWriter()
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
        layer = get_channel_layer()
        # Only several processes need the layer for document traffic; within one process every
        # member is local, and going through the layer measured ~100x slower at p99.
        self.bus = Bus(layer, self._on_remote) if settings.REDIS_URL and layer else None
        self._background: list[asyncio.Task[None]] = []
        self._clients_pending: dict[str, list[int]] = {}
        self._clients_flush: asyncio.Task[None] | None = None
        # Awareness relays and replica rebuilds in flight (the loop keeps only weak references
        # to tasks).
        self._relays: set[asyncio.Task[None]] = set()
        # Open document sockets per user id (PALIMPSEST_CONNECTIONS_PER_USER).
        self._sockets: dict[int, int] = {}

    def count_connection(self, user_id: int) -> bool:
        """Count a new socket of this user's; False (and not counted) when over the cap."""
        count = self._sockets.get(user_id, 0)
        if count >= settings.PALIMPSEST_CONNECTIONS_PER_USER:
            return False
        self._sockets[user_id] = count + 1
        return True

    def uncount_connection(self, user_id: int) -> None:
        """A socket counted by `count_connection` is gone."""
        count = self._sockets.get(user_id, 0) - 1
        if count > 0:
            self._sockets[user_id] = count
        else:
            self._sockets.pop(user_id, None)

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

    def note_clients(self, connection_id: str, client_ids: list[int]) -> None:
        """Record which awareness ids a connection speaks for, soon and batched with others.

        The sender's next frames do not wait for this write.
        """
        self._clients_pending[connection_id] = client_ids
        if self._clients_flush is None or self._clients_flush.done():
            self._clients_flush = asyncio.get_running_loop().create_task(self._flush_clients())

    async def _flush_clients(self) -> None:
        """Write pending awareness ids until none are left."""
        while self._clients_pending:
            batch, self._clients_pending = self._clients_pending, {}
            try:
                await self.write(presence_set_clients, clients=batch)
            except Exception:
                logger.warning("recording presence client ids failed", exc_info=True)

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
            await self.bus.set_subscribed(
                document_group(room.document_id), lambda: room.document_id in self.rooms
            )
        replay = await database_sync_to_async(document_replay)(document_id=room.document_id)
        room.replica.load(replay.updates)
        room.seqs.contiguous = replay.head
        room.compacted_to = replay.snapshot_seq
        self._maybe_compact(room)

    async def leave(self, connection: Connection, room: Room) -> None:
        """Remove a connection; tell the others its carets are gone."""
        room.members.discard(connection)
        gone = [cid for cid, owner in room.awareness_owner.items() if owner is connection]
        for cid in gone:
            del room.awareness_owner[cid]
        removal = room.replica.remove_awareness(gone, connection)
        if removal is not None:
            self.relay_awareness(room, None, removal)
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
            await self.bus.set_subscribed(
                document_group(room.document_id), lambda: room.document_id in self.rooms
            )

    # -- updates ---------------------------------------------------------------------------

    async def submit(self, room: Room, sender: Connection, event: NewEvent) -> None:
        """Queue an update already applied to the replica; it is relayed once durable."""
        room.accept()
        await self.appender.submit(Accepted(room, sender, event), len(event.update))

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
            self._maybe_compact(room)
            if self.bus is not None:
                await self.bus.publish(
                    document_group(room.document_id),
                    {"type": "doc.updates", "doc": room.document_id.hex, "events": events},
                )
            await self._unload_if_idle(room)

    async def _on_failed(self, batch: Sequence[Accepted], exc: BaseException) -> None:
        """The log refused these updates: reset their rooms so everyone resyncs from the log."""
        rooms = {item.room for item in batch}
        for item in batch:
            item.room.settle()
        for room in rooms:
            await self._close_room(room, exc)

    async def _close_room(self, room: Room, exc: BaseException) -> None:
        """Drop a room whose replica is not the log's: everyone reconnects and resyncs."""
        logger.error("closing room %s: %s", room.document_id, exc)
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
        self._relays.add(task)
        task.add_done_callback(self._relays.discard)

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
                await self._apply_logged(room, [(seq, update)])
            elif seq not in seen.ahead:
                await room.broadcast(create_update_message(update))

    def _maybe_compact(self, room: Room) -> None:
        """Ask a worker to snapshot the room's document once its log tail is long enough.

        Asked once per threshold's worth of events; the beat sweep catches any request lost
        on the way (the task is idempotent, so a duplicate costs one no-op).
        """
        threshold = settings.PALIMPSEST_COMPACT_TAIL_EVENTS
        if threshold <= 0 or room.seqs.contiguous - room.compacted_to < threshold:
            return
        room.compacted_to = room.seqs.contiguous
        # Publishing to a Redis broker is network I/O: not on the event loop.
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(None, _request_compaction, room.document_id)
        future.add_done_callback(_log_failure)

    async def on_room_message(self, message: dict[str, Any]) -> None:
        """A message for a document's rooms from a service in this process."""
        await self._dispatch(message, _FROM_SERVICES)

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
            await self._catch_up_room(room)

    async def doc_access(self, room: Room, message: dict[str, Any]) -> None:
        """A user's rights changed: their sockets in the room get them as they are now."""
        ended = message.get("session")
        await self._recheck_access(
            room, message.get("user"), ended if isinstance(ended, str) else None
        )

    async def doc_purged(self, room: Room, message: dict[str, Any]) -> None:
        """Purged sessions lose their carets."""
        # A purged client id now spoken for by a live local connection is not a ghost.
        ids = [
            int(cid)
            for cid in message.get("clients", [])
            if isinstance(cid, int) and cid not in room.awareness_owner
        ]
        removal = room.replica.remove_awareness(ids, "purge")
        if removal is not None:
            self.relay_awareness(room, None, removal)

    async def _recheck_access(self, room: Room, user_id: object, ended: str | None) -> None:
        """Give this user's sockets in the room their rights as they are now."""
        for member in [m for m in list(room.members) if m.user_id == user_id]:
            await member.recheck_access(ended)

    # -- other processes -------------------------------------------------------------------

    async def _on_remote(self, message: dict[str, Any]) -> None:
        """Another process's durable updates, awareness or service messages, for a ready room."""
        await self._dispatch(message, _FROM_PROCESSES, ready=True)

    async def doc_updates(self, room: Room, message: dict[str, Any]) -> None:
        """Another process's durable updates: apply and relay the ones not seen here."""
        await self._apply_logged(room, [(int(s), bytes(u)) for s, u in message["events"]])

    async def doc_awareness(self, room: Room, message: dict[str, Any]) -> None:
        """Another process checked ownership; here its frame is only recorded and passed on."""
        frame = bytes(message["frame"])
        _, relay = room.replica.apply_awareness(
            _awareness_payload(frame), "remote", lambda cid: True
        )
        if relay is not None:
            await room.broadcast(create_awareness_message(relay))

    async def _apply_logged(self, room: Room, events: list[tuple[int, bytes]]) -> None:
        """Apply logged events this room has not seen and relay them to every local member."""
        if room.rebuilding is not None:
            await asyncio.shield(room.rebuilding)  # then the rebuilt replica's seqs apply
        for seq, update in events:
            if room.seqs.mark(seq):
                room.replica.load((update,))
                await room.broadcast(create_update_message(update))

    def relay_awareness(self, room: Room, sender: Connection | None, update: bytes) -> None:
        """Relay a checked awareness update to everyone else soon, merged with its neighbours.

        Stock clients renew their awareness every 15 s, all of a room's clients in the same
        moment when they joined together; merging what a room gathers within one short window
        sends each member one frame instead of one per sender (per-frame cost under daphne
        is what bounds the relay).
        """
        room.awareness_outbox.append((sender, update))
        if len(room.awareness_outbox) == 1:
            asyncio.get_running_loop().call_later(
                settings.PALIMPSEST_AWARENESS_RELAY_SECONDS, self._start_relay, room
            )

    def _start_relay(self, room: Room) -> None:
        """Run the room's awareness relay as a task the hub keeps hold of."""
        task = asyncio.get_running_loop().create_task(self._relay_awareness_now(room))
        self._relays.add(task)
        task.add_done_callback(self._relays.discard)

    async def _relay_awareness_now(self, room: Room) -> None:
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
            if self.bus is not None and everything is not None:
                await self.bus.publish(
                    document_group(room.document_id),
                    {"type": "doc.awareness", "doc": room.document_id.hex, "frame": everything},
                )
        except Exception:
            logger.warning("relaying awareness in %s failed", room.document_id, exc_info=True)

    # -- background ------------------------------------------------------------------------

    def _start_background(self) -> None:
        """Start heartbeats (and, with several processes, log catch-up) once per hub."""
        if self._background:
            return
        loop = asyncio.get_running_loop()
        self._background.append(loop.create_task(self._heartbeat_loop()))
        if self.bus is not None:
            self._background.append(loop.create_task(self._catchup_loop()))
        if self.log.needs_checkpoints:
            self._background.append(loop.create_task(self._checkpoint_loop()))

    async def _heartbeat_loop(self) -> None:
        """Keep presence rows of live connections fresh."""
        while True:
            await asyncio.sleep(settings.PALIMPSEST_HEARTBEAT_SECONDS)
            ids = [m.connection_id for room in self.rooms.values() for m in room.members]
            try:
                await self.write(presence_touch, connection_ids=ids)
            except Exception:
                logger.warning("presence heartbeat failed", exc_info=True)

    async def _checkpoint_loop(self) -> None:
        """Fold the SQLite WAL into the database off the append path."""
        while True:
            await asyncio.sleep(_CHECKPOINT_SECONDS)
            try:
                await database_sync_to_async(checkpoint)()
            except Exception:
                logger.warning("SQLite checkpoint failed", exc_info=True)

    async def _catchup_loop(self) -> None:
        """Fetch from the log whatever the at-most-once layer did not deliver."""
        while True:
            await asyncio.sleep(settings.PALIMPSEST_CATCHUP_SECONDS)
            try:
                await self.catch_up()
            except Exception:
                logger.warning("log catch-up failed", exc_info=True)

    async def catch_up(self) -> None:
        """Apply every logged event newer than what each ready room has seen."""
        rooms = [r for r in self.rooms.values() if r.ready.done() and not r.closed]
        if not rooms:
            return
        heads = await database_sync_to_async(document_heads)(
            document_ids=[r.document_id for r in rooms]
        )
        for room in rooms:
            if heads.get(room.document_id, 0) > room.seqs.contiguous:
                await self._catch_up_room(room)

    async def _catch_up_room(self, room: Room) -> None:
        """Apply and relay the room's logged events it has not seen."""
        missed = await database_sync_to_async(events_after)(
            document_id=room.document_id, after_seq=room.seqs.contiguous
        )
        await self._apply_logged(room, missed)

    async def shutdown(self) -> None:
        """Finish pending appends, stop background work and release the writer's connection."""
        await self.appender.drain()
        if self._clients_flush is not None:
            await asyncio.wait({self._clients_flush})
        for task in self._background:
            task.cancel()
        if self.bus is not None:
            await self.bus.close()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self.appender.executor, connections.close_all)
        self.appender.executor.shutdown(wait=False)
        self.log.close()


def _parked_limits() -> ParkedLimits:
    """The bound on a live document's parked updates, from settings."""
    return ParkedLimits(
        max_updates=settings.PALIMPSEST_PARKED_MAX_UPDATES,
        max_bytes=settings.PALIMPSEST_PARKED_MAX_BYTES,
    )


def _request_compaction(document_id: uuid.UUID) -> None:
    """Queue the compaction task for a document."""
    compact_document.delay(str(document_id))


def _log_failure(future: asyncio.Future[None]) -> None:
    """Log a failed background request; the beat sweep will ask again."""
    if not future.cancelled() and future.exception() is not None:
        logger.warning("asking for a compaction failed: %s", future.exception())


def _awareness_payload(frame: bytes) -> bytes:
    """The awareness update inside an awareness frame we encoded or relayed."""
    return parse_frame(frame).payload


# Group message types each source may send (handlers are the Hub's methods of the same name).
_FROM_SERVICES = frozenset({"doc.catchup", "doc.access", "doc.purged"})
_FROM_PROCESSES = _FROM_SERVICES | {"doc.updates", "doc.awareness"}

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
