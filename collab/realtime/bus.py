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

Handler = Callable[[dict[str, Any]], Awaitable[None]]


class Bus:
    """Publishes a room's durable updates to other processes and receives theirs.

    Delivery through the layer is at most once; rooms catch up from the log for the rest.
    """

    def __init__(self, layer: Any, handler: Handler) -> None:
        self._layer = layer
        self._handler = handler
        # Lets a process recognise (and skip) its own messages coming back through the group.
        self.origin = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._channel: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._subscribed: set[str] = set()
        # Serialises add/discard per group, so a quick close-then-reopen ends subscribed.
        self._locks: dict[str, asyncio.Lock] = {}

    async def _ensure_started(self) -> str:
        """Create this process's channel and its receive loop on first use."""
        if self._channel is None:
            self._channel = await self._layer.new_channel()
            self._task = asyncio.get_running_loop().create_task(self._receive_loop())
        return self._channel

    async def set_subscribed(self, group: str, wanted: Callable[[], bool]) -> None:
        """Make the subscription to `group` match `wanted()`, evaluated under its lock."""
        channel = await self._ensure_started()
        lock = self._locks.setdefault(group, asyncio.Lock())
        async with lock:
            want = wanted()
            if want and group not in self._subscribed:
                await self._layer.group_add(group, channel)
                self._subscribed.add(group)
            elif not want and group in self._subscribed:
                await self._layer.group_discard(group, channel)
                self._subscribed.discard(group)

    async def follow(self, document_id: uuid.UUID, wanted: Callable[[], bool]) -> None:
        """Subscribe to a document's group while `wanted()` holds, and leave it after."""
        await self.set_subscribed(document_group(document_id), wanted)

    async def publish_room(self, document_id: uuid.UUID, message: dict[str, Any]) -> None:
        """Send a room message (its `type` and payload) to the document's other processes."""
        await self.publish(document_group(document_id), {**message, "doc": document_id.hex})

    async def publish(self, group: str, message: dict[str, Any]) -> None:
        """Send a message to every process subscribed to `group`."""
        try:
            await self._layer.group_send(group, {**message, "origin": self.origin})
        except Exception:
            # The log holds the update; other processes catch up from it.
            logger.warning("cross-process publish to %s failed", group, exc_info=True)

    async def _receive_loop(self) -> None:
        """Hand every message from other processes to the handler."""
        assert self._channel is not None
        while True:
            try:
                message = await self._layer.receive(self._channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("channel layer receive failed; retrying", exc_info=True)
                await asyncio.sleep(0.5)
                continue
            if message.get("origin") == self.origin:
                continue
            try:
                await self._handler(message)
            except Exception:
                logger.exception("handling %s failed", message.get("type"))

    async def close(self) -> None:
        """Stop receiving."""
        if self._task is not None:
            self._task.cancel()
