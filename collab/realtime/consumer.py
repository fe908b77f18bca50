"""`/ws/docs/{id}`: the y-websocket endpoint. Thin: checks, then hands frames to the hub."""

from __future__ import annotations

import asyncio
import logging
import uuid
from functools import partial
from typing import Any

from channels.consumer import AsyncConsumer, get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from django.conf import settings
from django.db import DatabaseError

from collab.permissions import Action, role_may
from collab.realtime import drain
from collab.realtime.answers import FullStateAnswers
from collab.realtime.auth import TOKEN_ID
from collab.realtime.codes import (
    CLOSE_ACCESS_REMOVED,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_STORE_FAILED,
    CLOSE_TOO_BIG,
    CLOSE_TOO_MANY_CONNECTIONS,
    CLOSE_UNSUPPORTED_DATA,
)
from collab.realtime.hub import current_hub
from collab.realtime.rooms import FLOW_EXTENSION, ReceiveFlow, Room, log_ids
from collab.selectors import connection_role
from collab.services import Admission, presence_close
from collab.sync.protocol import (
    EMPTY_UPDATE,
    FrameKind,
    ProtocolError,
    decode_awareness,
    decode_state_vector,
    encode_permission_denied,
    parse_frame,
)
from collab.sync.replica import ReplicaTainted
from collab.sync.writers import new_writers
from events.services import NewEvent

logger = logging.getLogger(__name__)


class DocumentConsumer(AsyncConsumer):
    """One client's connection to one document."""

    connection_id: str
    can_write: bool = False
    room: Room | None = None
    user_id: int | None = None
    user_name: str | None = None
    # The Yjs client id this connection announced in its awareness, stamped on its events.
    yjs_client_id: int | None = None
    # Set once we close the socket (or a send to it failed): nothing more goes either way.
    closing: bool = False
    # Counted against PALIMPSEST_CONNECTIONS_PER_USER while set.
    counted: bool = False
    answers: FullStateAnswers | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Serve one socket: AsyncConsumer's loop without its per-connection channel.

        The hub holds one channel-layer subscription per open document, so a connection has a
        single input; reading it directly saves the task and asyncio.wait Channels spends per
        message when it listens to two.
        """
        self.scope = scope
        self.channel_layer = None
        self.base_send = send
        # Under our daphne transport: report each handled message, so it reads on (rooms.py).
        flow: ReceiveFlow | None = scope.get("extensions", {}).get(FLOW_EXTENSION)
        try:
            while True:
                message = await receive()
                try:
                    await self.dispatch(message)
                finally:
                    if flow is not None and message["type"] == "websocket.receive":
                        flow.taken(_size(message))
        except StopConsumer:
            pass
        finally:
            # Also when the task is cancelled or fails before a disconnect message came.
            if self.answers is not None:
                self.answers.cancel()
            self._uncount()

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Route each message straight to its handler.

        Channels runs `aclose_old_connections()` in a worker thread before every handler, for
        handlers that use the loop thread's database connection. Ours never do (the database
        is reached through the hub's writer thread or `database_sync_to_async`, which manage
        their own), and that thread hop measured as the ingest bottleneck on frames and a
        large part of a join burst's handshakes.
        """
        if message["type"] == "websocket.receive":
            await self.websocket_receive(message)
            return
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"no handler for message type {message['type']}")
        await handler(message)

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        """Accept members of an existing document; refuse everyone else at the handshake."""
        user = self.scope.get("user")
        raw_id = self.scope["url_route"]["kwargs"]["doc_id"]
        self.connection_id = uuid.uuid4().hex
        hub = current_hub()
        if user is None or not user.is_authenticated:
            role = None
        elif not hub.count_connection(user.pk):
            limit = settings.PALIMPSEST_CONNECTIONS_PER_USER
            await self.send({"type": "websocket.accept"})
            await self.close_with(
                CLOSE_TOO_MANY_CONNECTIONS, f"too many open connections (the limit is {limit})"
            )
            raise StopConsumer()
        else:
            self.counted = True
            role = await hub.admit(
                Admission(
                    user_id=user.pk,
                    document_id=raw_id,
                    connection_id=self.connection_id,
                    token_id=self.scope.get(TOKEN_ID),
                )
            )
        if role is None or user is None:
            # Unknown documents and strangers look the same: nothing leaks either way.
            self._uncount()
            await self.send({"type": "websocket.close"})
            raise StopConsumer()
        document_id = uuid.UUID(raw_id)
        self.user_id = user.pk
        self.user_name = user.get_username()
        self.can_write = role_may(role, Action.WRITE)
        self.answers = FullStateAnswers(
            interval=settings.PALIMPSEST_FULL_STATE_SECONDS,
            answer_step1=self._answer_step1,
            answer_awareness=self._answer_awareness,
        )
        await self.send({"type": "websocket.accept"})
        try:
            self.room = await current_hub().join(self, document_id)
        except BaseException:
            # The log could not be read: no room, so no presence either.
            self._uncount()
            await current_hub().write(presence_close, connection_id=self.connection_id)
            raise
        if self.room.rebuilding is not None:  # not the state vector of a replica being replaced
            await asyncio.shield(self.room.rebuilding)
        logger.debug(
            "%s joined %s as %s",
            self.connection_id,
            document_id,
            role,
            extra=log_ids(document_id, self.connection_id),
        )
        await self.send_frame(self.room.replica.sync_step1())
        awareness = self.room.replica.awareness_message()
        if awareness is not None:
            await self.send_frame(awareness)

    async def websocket_receive(self, message: dict[str, Any]) -> None:
        """Handle one frame from the client."""
        room = self.room
        if room is None or self.closing or drain.draining():
            # Draining: not taken, so the client still has it and sends it where it reconnects.
            return
        data = message.get("bytes")
        if data is None:
            await self.close_with(CLOSE_UNSUPPORTED_DATA, "binary y-websocket frames only")
            return
        if len(data) > settings.PALIMPSEST_MAX_FRAME_BYTES:
            limit = settings.PALIMPSEST_MAX_FRAME_BYTES
            await self.close_with(CLOSE_TOO_BIG, f"message too large: the limit is {limit} bytes")
            return
        try:
            await self._handle(room, data)
        except ProtocolError as exc:
            if isinstance(exc, ReplicaTainted):
                # Before anything else runs: no other update may land on the tainted replica.
                current_hub().rebuild(room)
            await self.close_with(CLOSE_PROTOCOL_ERROR, str(exc)[:120])

    async def _handle(self, room: Room, data: bytes) -> None:
        """Act on one well-formed frame (or raise ProtocolError)."""
        frame = parse_frame(data)
        kind = frame.kind
        if room.rebuilding is not None and kind is not FrameKind.AWARENESS:
            await asyncio.shield(room.rebuilding)
            if room.closed or self.closing:  # the rebuild failed: everyone is reconnecting
                return
        if kind is FrameKind.SYNC_UPDATE or kind is FrameKind.SYNC_STEP2:
            if not self.can_write:
                # A viewer's SyncStep2 is the reply to our SyncStep1 and is dropped silently;
                # a viewer's own edit is refused out loud.
                if kind is FrameKind.SYNC_UPDATE and frame.payload != EMPTY_UPDATE:
                    await self.send_frame(encode_permission_denied("viewers cannot edit"))
                return
            try:
                foreign = await self._foreign_writer(room, frame.payload)
            except DatabaseError as exc:
                # Not taken: the client keeps the update and re-sends it when it reconnects.
                logger.warning("client id claim failed: %r", exc, extra=log_ids(room.document_id))
                await self.close_with(CLOSE_STORE_FAILED, "edit could not be stored; retrying")
                return
            if foreign is not None:
                raise ProtocolError(f"client id {foreign} writes for another account")
            if room.rebuilding is not None:  # began while a claim was asked for
                await asyncio.shield(room.rebuilding)
            if room.closed or self.closing:
                return
            if room.replica.apply(frame.payload):
                await current_hub().submit(
                    room,
                    self,
                    NewEvent(
                        document_id=room.document_id,
                        update=frame.payload,
                        actor_id=self.user_id,
                        yjs_client_id=self.yjs_client_id,
                    ),
                )
        elif kind is FrameKind.SYNC_STEP1:
            behind = room.replica.clocks_behind(frame.payload)  # checks the vector, too
            if behind > settings.PALIMPSEST_FAR_BEHIND_CLOCKS and self.answers is not None:
                await self.answers.step1(frame.payload)
            else:
                await self._answer_step1(frame.payload)
        elif kind is FrameKind.AWARENESS:
            await self._awareness(room, frame.payload)
        elif kind is FrameKind.QUERY_AWARENESS and self.answers is not None:
            await self.answers.awareness()

    async def _foreign_writer(self, room: Room, update: bytes) -> int | None:
        """A client id `update` creates items under that another account owns, if any.

        The room loads who owns which id when it opens and learns each new claim. An id it
        does not know and has no items of is new: it is the sender's at once, and written to
        the database in the background (collab/realtime/claims.py; measured: waiting for
        that write put fan-out p99 at 90 ms to 1.4 s while 400 new sessions started). An id
        it has items of but no owner for was written on another process since it opened:
        the database says whose, before the update goes on.
        """
        writers, mine = room.writers, self.user_id
        vector: list[bytes] = []

        def state() -> bytes:
            vector.append(room.replica.doc.get_state())
            return vector[0]

        for client_id in new_writers(update, lambda c: writers.get(c, -1) == mine, state):
            if client_id not in writers:
                claim = current_hub().claims.submit(room.document_id, client_id, mine)
                if decode_state_vector(vector[0]).get(client_id, 0) > 0:
                    writers[client_id] = await claim
                else:
                    writers[client_id] = mine
                    claim.add_done_callback(partial(self._claimed, room, client_id))
            if writers[client_id] != mine:
                return client_id
        return None

    def _claimed(self, room: Room, client_id: int, claim: asyncio.Future[int | None]) -> None:
        """A background claim's answer: another account took the id first (on another
        process, at the same moment), so it is theirs and this socket may not go on."""
        if claim.cancelled():
            return
        if claim.exception() is not None:
            # The id stays the sender's here; the next room to open asks the database again.
            logger.warning("client id claim failed: %r", claim.exception())
            return
        owner = claim.result()
        if owner == self.user_id:
            return
        room.writers[client_id] = owner
        logger.warning("client id %s was claimed by another account on another process", client_id)
        if not self.closing:
            asyncio.get_running_loop().create_task(
                self.close_with(
                    CLOSE_PROTOCOL_ERROR, f"client id {client_id} writes for another account"
                )
            )

    async def _answer_step1(self, state_vector: bytes) -> None:
        """Send what a client with `state_vector` lacks, once all accepted before is durable."""
        room = self.room
        if room is None:
            return
        # The replica already holds updates still on their way to the log; nobody gets
        # them before they are durable, so the answer waits for those in flight now.
        await room.all_settled()
        if room.rebuilding is not None:
            await asyncio.shield(room.rebuilding)
        if room.closed or self.closing:  # the log refused them; this socket is being closed
            return
        await self.send_frame(room.replica.answer_step1(state_vector))

    async def _answer_awareness(self) -> None:
        """Send every awareness state the room knows of."""
        room = self.room
        awareness = None if room is None else room.replica.awareness_message()
        if awareness is not None:
            await self.send_frame(awareness)

    async def _awareness(self, room: Room, payload: bytes) -> None:
        """Record and relay a client's awareness; it may speak only for its own client ids."""
        owners = room.awareness_owner

        def may_speak_for(client_id: int) -> bool:
            owner = owners.get(client_id)
            if owner is not None:
                return owner is self
            # Unowned: a new client id, or one whose state came from another process (which
            # a stock client merely echoes back and must not overwrite).
            return not room.replica.knows_awareness_of(client_id)

        # Bounds first, before anything is recorded: a state's size, and how many client ids
        # one connection speaks for (each is a caret every member is sent).
        decoded = decode_awareness(
            payload, max_state_bytes=settings.PALIMPSEST_AWARENESS_STATE_BYTES
        )
        claimed = {
            e.client_id
            for e in decoded
            if e.state is not None and e.client_id not in owners and may_speak_for(e.client_id)
        }
        owned = sum(1 for owner in owners.values() if owner is self)
        if owned + len(claimed) > settings.PALIMPSEST_AWARENESS_CLIENTS_MAX:
            raise ProtocolError("too many awareness client ids on one connection")
        entries, update = room.replica.apply_awareness(
            payload, self, may_speak_for, user_name=self.user_name, decoded=decoded
        )
        if update is None:
            return
        # Only a live state claims an id: echoed removals of departed clients claim nothing.
        new_ids = [
            e.client_id for e in entries if e.client_id not in owners and e.state is not None
        ]
        for client_id in new_ids:
            owners[client_id] = self
        if self.yjs_client_id is None and new_ids:
            self.yjs_client_id = new_ids[0]
        current_hub().relay_awareness(room, self, update)
        if new_ids:
            mine = [cid for cid, owner in owners.items() if owner is self]
            current_hub().note_clients(self.connection_id, mine)

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        """Leave the room and drop the presence row."""
        self.closing = True
        if self.answers is not None:
            self.answers.cancel()
        self._uncount()
        if self.room is not None:
            room, self.room = self.room, None
            logger.debug(
                "%s left %s",
                self.connection_id,
                room.document_id,
                extra=log_ids(room.document_id, self.connection_id),
            )
            await current_hub().leave(self, room)
            await current_hub().write(presence_close, connection_id=self.connection_id)
        raise StopConsumer()

    async def recheck_access(self, ended_session: str | None = None) -> None:
        """Apply a change of rights at once: read-only for a viewer, closed for nobody (and
        for a socket of `ended_session`, a browser session that logged out)."""
        room = self.room
        if room is None or self.user_id is None or self.closing:
            return
        session_key = self._session_key()
        if ended_session is not None and session_key == ended_session:
            role = None
        else:
            role = await database_sync_to_async(connection_role)(
                user_id=self.user_id,
                document_id=room.document_id,
                token_id=self.scope.get(TOKEN_ID),
                session_key=session_key,
            )
        if role is None:
            await self.close_with(CLOSE_ACCESS_REMOVED, "your access to this document was removed")
            return
        writable = role_may(role, Action.WRITE)
        if self.can_write and not writable:
            # y-protocols' permission-denied: the browser app turns read-only and says why.
            await self.send_frame(encode_permission_denied("your role is now viewer"))
        self.can_write = writable

    def _session_key(self) -> str | None:
        """The browser session this socket authenticated with (None: a token)."""
        if self.scope.get(TOKEN_ID) is not None:
            return None
        session = self.scope.get("session")
        return None if session is None else session.session_key

    def _uncount(self) -> None:
        """Stop counting this socket against its user's connection cap."""
        if self.counted:
            self.counted = False
            current_hub().uncount_connection(self.scope["user"].pk)

    async def send_frame(self, frame: bytes) -> None:
        """Send one binary frame; nothing once the socket is closing, and never raises."""
        if self.closing:
            return
        try:
            await self.send({"type": "websocket.send", "bytes": frame})
        except Exception:
            # The transport refused (e.g. the socket is half closed): the client is leaving.
            self.closing = True
            logger.debug("send to %s failed; treating it as closing", self.connection_id)

    async def close_with(self, code: int, reason: str) -> None:
        """Close the socket with a code and a reason the client can log."""
        connection_id = getattr(self, "connection_id", "?")
        document_id = None if self.room is None else self.room.document_id
        logger.info(
            "closing %s: %s (%s)",
            connection_id,
            reason,
            code,
            extra={**log_ids(document_id, connection_id), "close_code": code},
        )
        if self.closing:
            return
        self.closing = True
        if self.answers is not None:
            self.answers.cancel()
        try:
            await self.send({"type": "websocket.close", "code": code, "reason": reason})
        except Exception:
            logger.debug("close of %s failed; it is gone already", self.connection_id)


def _size(message: dict[str, Any]) -> int:
    """Bytes of a received WebSocket message, as the transport counted them."""
    data = message.get("bytes")
    if data is not None:
        return len(data)
    return len((message.get("text") or "").encode("utf-8"))
