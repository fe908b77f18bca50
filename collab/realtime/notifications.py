"""`/ws/notifications`: JSON events for the caller (exports) and the documents they watch."""

from __future__ import annotations

import uuid
import weakref
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from collab.notify import (
    attach_loop,
    document_notify_group,
    subscribe_layer_replaced,
    user_group,
)
from collab.realtime.auth import TOKEN_ID
from collab.realtime.codes import CLOSE_SERVICE_RESTART
from collab.selectors import connection_role, document_role

# Documents one socket may watch at once: each is a group membership in the layer.
MAX_WATCHED = 200

# This process's open notification sockets.
_open: weakref.WeakSet[NotificationConsumer] = weakref.WeakSet()


async def _close_all_for_restart() -> None:
    """The process's channel layer was replaced: the sockets subscribed through the old one
    hear nothing more, so they close (1012) and their clients subscribe again on reconnect."""
    for consumer in list(_open):
        await consumer.close(code=CLOSE_SERVICE_RESTART)


class NotificationConsumer(AsyncJsonWebsocketConsumer):
    """Joins the user's group on connect; `{"type": "watch", "document": id}` adds a document."""

    groups: list[str] = []

    async def connect(self) -> None:
        """Accept signed-in users only."""
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close()
            return
        attach_loop()
        self.user_id: int = user.pk
        self.watched: set[str] = set()
        await self.channel_layer.group_add(user_group(user.pk), self.channel_name)
        await self.accept()
        _open.add(self)
        await self.send_json({"type": "hello", "user": user.get_username()})

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        """Watch or unwatch a document the user may read; anything else is an error reply."""
        if not isinstance(content, dict) or content.get("type") not in ("watch", "unwatch"):
            await self.send_json({"type": "error", "detail": "expected watch or unwatch"})
            return
        raw = str(content.get("document", ""))
        try:
            document_id = uuid.UUID(raw)
        except ValueError:
            await self.send_json({"type": "error", "detail": "no such document", "document": raw})
            return
        group = document_notify_group(document_id)
        if content["type"] == "unwatch":
            self.watched.discard(group)
            await self.channel_layer.group_discard(group, self.channel_name)
            await self.send_json({"type": "unwatched", "document": str(document_id)})
            return
        role = await database_sync_to_async(document_role)(
            user=self.scope["user"], document_id=document_id
        )
        if role is None or len(self.watched) >= MAX_WATCHED:
            # Strangers and unknown documents get the same answer.
            await self.send_json({"type": "error", "detail": "no such document", "document": raw})
            return
        self.watched.add(group)
        await self.channel_layer.group_add(group, self.channel_name)
        await self.send_json({"type": "watching", "document": str(document_id)})

    async def notify_event(self, message: dict[str, Any]) -> None:
        """Pass a published event on to the browser; stop watching a document this socket
        may no longer read (unshared, token revoked, user deactivated, logged out)."""
        event = message["event"]
        await self.send_json(event)
        if event.get("type") == "access.changed":
            await self._recheck_watch(str(event.get("document")))

    async def _recheck_watch(self, document: str) -> None:
        """Unwatch `document` if this socket's rights to it are gone."""
        group = document_notify_group(document)
        if group not in self.watched:
            return
        session = self.scope.get("session")
        token_id = self.scope.get(TOKEN_ID)
        role = await database_sync_to_async(connection_role)(
            user_id=self.user_id,
            document_id=uuid.UUID(document),
            token_id=token_id,
            session_key=None if token_id is not None or session is None else session.session_key,
        )
        if role is None:
            self.watched.discard(group)
            await self.channel_layer.group_discard(group, self.channel_name)
            await self.send_json(
                {"type": "unwatched", "document": document, "why": "access removed"}
            )

    async def disconnect(self, code: int) -> None:
        """Leave every group."""
        _open.discard(self)
        if getattr(self, "user_id", None) is None:
            return
        await self.channel_layer.group_discard(user_group(self.user_id), self.channel_name)
        for group in self.watched:
            await self.channel_layer.group_discard(group, self.channel_name)


subscribe_layer_replaced(_close_all_for_restart)
