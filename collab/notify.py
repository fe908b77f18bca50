"""Notifications for browsers and rooms: `publish` is the one function that sends them.

Tasks and services call it inside their transaction; delivery happens after the commit, so
nobody hears of a state the database may still roll back.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

# Notifications from one commit are given up after this long (the layer has not answered).
NOTIFY_SECONDS = 2.0

# The event loop that serves WebSockets in this process. With the in-memory layer (the
# embedded default) a worker thread must hand its messages to that loop: the layer's asyncio
# queues belong to it and are not thread-safe.
_server_loop: asyncio.AbstractEventLoop | None = None


# Who hears room messages in this process when there is no cross-process bus (the in-memory
# layer): the realtime layer subscribes here, so the publisher needs to know nothing of it.
RoomListener = Callable[[dict[str, Any]], Awaitable[None]]
_room_listeners: list[RoomListener] = []


def subscribe_rooms(listener: RoomListener) -> None:
    """Have `listener` (a coroutine function, run on the server loop) hear room messages."""
    if listener not in _room_listeners:
        _room_listeners.append(listener)


# Who is told when this process replaced its channel layer (its subscriptions had died): the
# sockets subscribed through the old one close, so their clients subscribe again.
LayerListener = Callable[[], Awaitable[None]]
_layer_listeners: list[LayerListener] = []


def subscribe_layer_replaced(listener: LayerListener) -> None:
    """Have `listener` (a coroutine function, run on the server loop) hear of a new layer."""
    if listener not in _layer_listeners:
        _layer_listeners.append(listener)


async def layer_replaced() -> None:
    """Tell the listeners the process's channel layer was replaced."""
    for listener in list(_layer_listeners):
        try:
            await listener()
        except Exception:
            logger.exception("a layer-replaced listener failed")


def document_group(document_id: uuid.UUID) -> str:
    """The channel-layer group that carries a document's cross-process traffic."""
    return f"doc.{document_id.hex}"


def user_group(user_id: int) -> str:
    """The notification group of one user's sockets."""
    return f"notify.user.{user_id}"


def document_notify_group(document_id: uuid.UUID | str) -> str:
    """The notification group of sockets watching one document."""
    return f"notify.doc.{uuid.UUID(str(document_id)).hex}"


def attach_loop() -> None:
    """Remember the running loop as the one that serves this process's sockets."""
    global _server_loop
    _server_loop = asyncio.get_running_loop()


def publish(
    event: dict[str, Any],
    *,
    user_ids: Iterable[int] = (),
    document_id: uuid.UUID | str | None = None,
    room_message: dict[str, Any] | None = None,
    to_watchers: bool = True,
) -> None:
    """After commit: send `event` to users' and (unless `to_watchers` is False) a document's
    notification sockets.

    `room_message` goes to the document's live rooms in every process (e.g. to drop the
    carets of purged sessions).
    """
    groups = [user_group(u) for u in user_ids]
    if document_id is not None and to_watchers:
        groups.append(document_notify_group(document_id))
    message = {"type": "notify.event", "event": event}
    sends = [(g, message) for g in groups]
    if room_message is not None and document_id is not None:
        doc = uuid.UUID(str(document_id))
        sends.append((document_group(doc), {**room_message, "doc": doc.hex}))
    transaction.on_commit(lambda: _deliver(sends))


def _deliver(sends: list[tuple[str, dict[str, Any]]]) -> None:
    """Send group messages now, from whichever thread the commit happened on."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        if isinstance(layer, InMemoryChannelLayer):
            loop = _server_loop
            if loop is None or loop.is_closed():
                return  # no socket was ever served here, so nobody can be listening
            # A fresh context: the committing thread's would tell asgiref that the loop's work
            # already runs in its single thread executor, and the hub's own database calls
            # (a room catching up after a restore) would be refused as a deadlock.
            loop.call_soon_threadsafe(
                _start_local_sends, layer, sends, context=contextvars.Context()
            )
        else:
            async_to_sync(_send_within)(layer, sends, NOTIFY_SECONDS)
    except Exception:
        # A notification is a courtesy: the state it announces is committed and visible.
        logger.warning("delivering %d notifications failed", len(sends), exc_info=True)


async def _send_within(layer: Any, sends: list[tuple[str, dict[str, Any]]], seconds: float) -> None:
    """`_send_all`, given up after `seconds`: a silent Redis must not hold the caller (a
    request, a task) longer than that."""
    try:
        await asyncio.wait_for(_send_all(layer, sends), seconds)
    except TimeoutError:
        logger.warning("delivering %d notifications timed out", len(sends))


def _start_local_sends(layer: Any, sends: list[tuple[str, dict[str, Any]]]) -> None:
    """On the server loop: send through the in-memory layer, and tell local rooms directly."""
    loop = asyncio.get_running_loop()
    task = loop.create_task(_send_all(layer, sends, local_rooms=True))
    _in_flight.add(task)
    task.add_done_callback(_in_flight.discard)


_in_flight: set[asyncio.Task[None]] = set()


async def _send_all(
    layer: Any, sends: list[tuple[str, dict[str, Any]]], *, local_rooms: bool = False
) -> None:
    """group_send each message; room messages go to this process's listeners when it has no bus."""
    for group, message in sends:
        if message["type"] == "notify.event":
            await layer.group_send(group, message)
        elif local_rooms:
            for listener in _room_listeners:
                await listener(message)
        else:
            await layer.group_send(group, message)
