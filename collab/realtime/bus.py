"""Cross-process delivery: one channel-layer subscription per open document per process."""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from collab.notify import document_group

logger = logging.getLogger(__name__)

# The group every process's bus joins: durable updates of every document, a batch a message.
UPDATES_GROUP = "bus.updates"

Handler = Callable[[dict[str, Any]], Awaitable[None]]
# Makes a fresh channel layer, for when the one the bus has went deaf.
Remake = Callable[[], Any]

# Messages waiting to be published; past this the newest are dropped (the log has them, and
# other processes catch up from it), so a silent Redis never grows this process.
OUTBOX_MAX = 10_000
# A subscribe or publish that takes longer is given up (on top of the client's own timeouts).
LAYER_TIMEOUT_SECONDS = 5.0


class Bus:
    """Publishes a room's durable updates to other processes and receives theirs.

    Delivery through the layer is at most once; rooms catch up from the log for the rest.
    Publishing never holds up the caller (the local relay): messages go out in order from an
    outbox of their own.
    """

    def __init__(
        self,
        layer: Any,
        handler: Handler,
        remake: Remake | None = None,
        replaced: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._layer = layer
        self._handler = handler
        self._remake = remake
        # Told once the bus moved to a new layer (the hub tells the notification sockets).
        self._replaced = replaced
        # A probe this process sends itself through the layer now and then (`check`): a
        # subscription that stopped delivering (channels_redis's pub/sub layer does not
        # subscribe again after Redis restarts) shows as a probe that never comes back.
        self._probe_group = f"bus.probe.{uuid.uuid4().hex}"
        self._probe_sent: int | None = None
        self._probe_back = 0
        # Lets a process recognise (and skip) its own messages coming back through the group.
        self.origin = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._channel: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._subscribed: set[str] = set()
        # Serialises add/discard per group, so a quick close-then-reopen ends subscribed.
        self._locks: dict[str, asyncio.Lock] = {}
        self._outbox: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue(OUTBOX_MAX)
        self._sender: asyncio.Task[None] | None = None
        # Logged once per outage, not once per message.
        self._failing = False

    async def _ensure_started(self) -> str:
        """Create this process's channel and its receive loop on first use."""
        if self._channel is not None:
            return self._channel
        channel: str = await asyncio.wait_for(self._layer.new_channel(), LAYER_TIMEOUT_SECONDS)
        for group in (self._probe_group, UPDATES_GROUP):
            await asyncio.wait_for(self._layer.group_add(group, channel), LAYER_TIMEOUT_SECONDS)
        self._channel = channel
        self._task = asyncio.get_running_loop().create_task(self._receive_loop(self._layer))
        return channel

    async def check(self) -> None:
        """Send a probe through the layer; if the last one, sent and taken, never came back,
        the subscriptions are dead: start over on a fresh layer and subscribe again."""
        if self._channel is None:
            return
        if self._probe_sent is not None and self._probe_back < self._probe_sent:
            await self._start_over()
            return
        number = (self._probe_sent or 0) + 1
        try:
            await asyncio.wait_for(
                self._layer.group_send(self._probe_group, {"type": "bus.probe", "n": number}),
                LAYER_TIMEOUT_SECONDS,
            )
        except Exception:
            self._probe_sent = None  # the layer is down: nothing to conclude yet
            return
        self._probe_sent = number

    async def _start_over(self) -> None:
        """Replace a layer that stopped delivering, and subscribe every group again."""
        if self._remake is None:
            return
        logger.warning("the channel layer stopped delivering; subscribing again on a new one")
        # The old layer is left as it is (sockets still subscribed through it are closed by
        # `replaced`, and reconnect onto the new one).
        old_task = self._task
        if old_task is not None:
            old_task.cancel()
        self._layer, self._channel, self._task = self._remake(), None, None
        self._probe_sent, self._probe_back = None, 0
        groups, self._subscribed = set(self._subscribed), set()
        try:
            channel = await self._ensure_started()
            for group in groups:
                await asyncio.wait_for(self._layer.group_add(group, channel), LAYER_TIMEOUT_SECONDS)
                self._subscribed.add(group)
        except Exception as exc:
            logger.warning("subscribing again failed (next check tries again): %r", exc)
        if self._replaced is not None:
            await self._replaced()

    @property
    def outbox(self) -> int:
        """Messages waiting to be published."""
        return self._outbox.qsize()

    def subscribed(self, document_id: uuid.UUID) -> bool:
        """Whether this process is subscribed to the document's group."""
        return document_group(document_id) in self._subscribed

    async def follow(self, document_id: uuid.UUID, wanted: Callable[[], bool]) -> bool:
        """Subscribe to a document's group while `wanted()` holds, and leave it after; False
        (logged) when the layer did not answer: catch-up from the log covers the room, and
        the next catch-up tries again."""
        try:
            await self.set_subscribed(document_group(document_id), wanted)
        except Exception as exc:
            logger.warning("subscribing to %s failed: %r", document_id, exc)
            return False
        return True

    async def set_subscribed(self, group: str, wanted: Callable[[], bool]) -> None:
        """Make the subscription to `group` match `wanted()`, evaluated under its lock."""
        channel = await self._ensure_started()
        lock = self._locks.setdefault(group, asyncio.Lock())
        async with lock:
            want = wanted()
            if want and group not in self._subscribed:
                await asyncio.wait_for(self._layer.group_add(group, channel), LAYER_TIMEOUT_SECONDS)
                self._subscribed.add(group)
            elif not want and group in self._subscribed:
                self._subscribed.discard(group)
                await asyncio.wait_for(
                    self._layer.group_discard(group, channel), LAYER_TIMEOUT_SECONDS
                )

    async def publish_updates(self, rooms: dict[uuid.UUID, list[tuple[int, bytes]]]) -> None:
        """Send a durable batch's events, every room's, to every other process in one message.

        One message per batch, not per room: publishes go out one at a time (channels_redis
        holds a lock per connection) and each waits for a turn of this busy loop, so per-room
        messages fell behind at 40 x 5 with clients split over two processes (measured: most
        edits reached the other process through catch-up, seconds late). A process receives
        the events of documents it does not have open, and skips them.
        """
        events = {doc.hex: pairs for doc, pairs in rooms.items()}
        await self.publish(UPDATES_GROUP, {"type": "rooms.updates", "rooms": events})

    async def publish_room(self, document_id: uuid.UUID, message: dict[str, Any]) -> None:
        """Send a room message (its `type` and payload) to the document's other processes."""
        await self.publish(document_group(document_id), {**message, "doc": document_id.hex})

    async def publish(self, group: str, message: dict[str, Any]) -> None:
        """Queue a message for every process subscribed to `group`; returns at once."""
        try:
            self._outbox.put_nowait((group, {**message, "origin": self.origin}))
        except asyncio.QueueFull:
            if not self._failing:
                logger.warning("cross-process outbox full: dropping (others catch up from the log)")
                self._failing = True
            return
        if self._sender is None or self._sender.done():
            self._sender = asyncio.get_running_loop().create_task(self._send_loop())

    async def _send_loop(self) -> None:
        """Publish queued messages in order; a failure drops that message only."""
        while True:
            group, message = await self._outbox.get()
            try:
                await asyncio.wait_for(
                    self._layer.group_send(group, message), LAYER_TIMEOUT_SECONDS
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The log holds the update; other processes catch up from it.
                if not self._failing:
                    logger.warning("cross-process publish to %s failed: %r", group, exc)
                    self._failing = True
            else:
                if self._failing:
                    logger.warning("cross-process publishing works again")
                    self._failing = False
            finally:
                self._outbox.task_done()

    async def drain(self, within: float) -> None:
        """Wait (at most `within` seconds) until queued messages are published."""
        try:
            await asyncio.wait_for(self._outbox.join(), within)
        except TimeoutError:
            logger.warning("%d cross-process messages not sent", self._outbox.qsize())

    async def _receive_loop(self, layer: Any) -> None:
        """Hand every message from other processes to the handler."""
        channel = self._channel
        assert channel is not None
        while True:
            try:
                message = await layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("channel layer receive failed; retrying", exc_info=True)
                await asyncio.sleep(0.5)
                continue
            if message.get("type") == "bus.probe":
                self._probe_back = max(self._probe_back, int(message.get("n", 0)))
                continue
            if message.get("origin") == self.origin:
                continue
            try:
                await self._handler(message)
            except Exception:
                logger.exception("handling %s failed", message.get("type"))

    async def close(self) -> None:
        """Stop sending and receiving."""
        for task in (self._task, self._sender):
            if task is not None:
                task.cancel()
