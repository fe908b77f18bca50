"""`/ws/docs/{id}`: the y-websocket endpoint. Thin: checks, then hands frames to the hub."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from channels.consumer import AsyncConsumer
from channels.exceptions import StopConsumer
from django.conf import settings

from collab.models import WRITE_ROLES
from collab.realtime.hub import current_hub
from collab.realtime.rooms import Room
from collab.selectors import document_role
from collab.services import presence_close, presence_open
from collab.sync.protocol import (
    EMPTY_UPDATE,
    FrameKind,
    ProtocolError,
    encode_permission_denied,
    parse_frame,
)
from events.services import NewEvent

logger = logging.getLogger(__name__)

# Close codes: servers may only send 1000 or 4000-4999 (RFC 6455 reserves the rest), so ours
# mirror HTTP statuses in the application range. The README lists them.
CLOSE_PROTOCOL_ERROR = 4400
CLOSE_TOO_BIG = 4413
CLOSE_UNSUPPORTED_DATA = 4415


def _admit(*, user: Any, document_id: str, connection_id: str) -> str | None:
    """The user's role on the document, with a presence row opened if they have one."""
    role = document_role(user=user, document_id=document_id)
    if role is not None:
        presence_open(document_id=document_id, user_id=user.pk, connection_id=connection_id)
    return role


class DocumentConsumer(AsyncConsumer):
    """One client's connection to one document."""

    connection_id: str
    can_write: bool = False
    room: Room | None = None
    user_id: int | None = None
    user_name: str | None = None
    # The Yjs client id this connection announced in its awareness, stamped on its events.
    yjs_client_id: int | None = None
    # Set once we close the socket: frames already in flight are then ignored.
    closing: bool = False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Serve one socket: AsyncConsumer's loop without its per-connection channel.

        The hub holds one channel-layer subscription per open document, so a connection has a
        single input; reading it directly saves the task and asyncio.wait Channels spends per
        message when it listens to two.
        """
        self.scope = scope
        self.channel_layer = None
        self.base_send = send
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Route binary frames straight to the handler: they touch no DB connection.

        Channels runs `aclose_old_connections()` in a worker thread before every handler; on
        the frame hot path that one thread hop measured as the ingest bottleneck.
        """
        if message["type"] == "websocket.receive":
            await self.websocket_receive(message)
        else:
            await super().dispatch(message)

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        """Accept members of an existing document; refuse everyone else at the handshake."""
        user = self.scope.get("user")
        raw_id = self.scope["url_route"]["kwargs"]["doc_id"]
        self.connection_id = uuid.uuid4().hex
        if user is None or not user.is_authenticated:
            role = None
        else:
            role = await current_hub().write(
                _admit, user=user, document_id=raw_id, connection_id=self.connection_id
            )
        if role is None or user is None:
            # Unknown documents and strangers look the same: nothing leaks either way.
            await self.send({"type": "websocket.close"})
            raise StopConsumer()
        document_id = uuid.UUID(raw_id)
        self.user_id = user.pk
        self.user_name = user.get_username()
        self.can_write = role in WRITE_ROLES
        await self.send({"type": "websocket.accept"})
        try:
            self.room = await current_hub().join(self, document_id)
        except BaseException:
            # The log could not be read: no room, so no presence either.
            await current_hub().write(presence_close, connection_id=self.connection_id)
            raise
        await self.send_frame(self.room.replica.sync_step1())
        awareness = self.room.replica.awareness_message()
        if awareness is not None:
            await self.send_frame(awareness)

    async def websocket_receive(self, message: dict[str, Any]) -> None:
        """Handle one frame from the client."""
        room = self.room
        if room is None or self.closing:
            return
        data = message.get("bytes")
        if data is None:
            await self.close_with(CLOSE_UNSUPPORTED_DATA, "binary y-websocket frames only")
            return
        if len(data) > settings.PALIMPSEST_MAX_FRAME_BYTES:
            await self.close_with(CLOSE_TOO_BIG, "frame exceeds the size limit")
            return
        try:
            await self._handle(room, data)
        except ProtocolError as exc:
            await self.close_with(CLOSE_PROTOCOL_ERROR, str(exc)[:120])

    async def _handle(self, room: Room, data: bytes) -> None:
        """Act on one well-formed frame (or raise ProtocolError)."""
        frame = parse_frame(data)
        kind = frame.kind
        if kind is FrameKind.SYNC_UPDATE or kind is FrameKind.SYNC_STEP2:
            if not self.can_write:
                # A viewer's SyncStep2 is the reply to our SyncStep1 and is dropped silently;
                # a viewer's own edit is refused out loud.
                if kind is FrameKind.SYNC_UPDATE and frame.payload != EMPTY_UPDATE:
                    await self.send_frame(encode_permission_denied("viewers cannot edit"))
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
            # The replica already holds updates still on their way to the log; nobody gets
            # them before they are durable, so the answer waits for those in flight now.
            await room.all_settled()
            if room.closed:  # the log refused them; this socket is being closed
                return
            await self.send_frame(room.replica.answer_step1(frame.payload))
        elif kind is FrameKind.AWARENESS:
            await self._awareness(room, frame.payload)
        elif kind is FrameKind.QUERY_AWARENESS:
            awareness = room.replica.awareness_message()
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

        entries, update = room.replica.apply_awareness(
            payload, self, may_speak_for, user_name=self.user_name
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
        if self.room is not None:
            room, self.room = self.room, None
            await current_hub().leave(self, room)
            await current_hub().write(presence_close, connection_id=self.connection_id)
        raise StopConsumer()

    async def send_frame(self, frame: bytes) -> None:
        """Send one binary frame."""
        await self.send({"type": "websocket.send", "bytes": frame})

    async def close_with(self, code: int, reason: str) -> None:
        """Close the socket with a code and a reason the client can log."""
        logger.info("closing %s: %s (%s)", getattr(self, "connection_id", "?"), reason, code)
        self.closing = True
        await self.send({"type": "websocket.close", "code": code, "reason": reason})
