"""Presence in one process: sockets per user, which awareness ids each socket speaks for,
and heartbeats that keep live connections' rows fresh."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings

from collab.services import Admission, admit_connections, presence_set_clients, presence_touch

logger = logging.getLogger(__name__)

# Runs a database write on the process's writer thread (AppendPipeline.write).
Write = Callable[..., Awaitable[Any]]


class Presence:
    """Counts each user's sockets and writes presence rows, batched, on the writer thread."""

    def __init__(self, write: Write, live_connections: Callable[[], list[str]]) -> None:
        self._write = write
        self._live_connections = live_connections
        # Open document sockets per user id (PALIMPSEST_CONNECTIONS_PER_USER).
        self._sockets: dict[int, int] = {}
        self._clients_pending: dict[str, list[int]] = {}
        self._clients_flush: asyncio.Task[None] | None = None
        self._admissions: list[tuple[Admission, asyncio.Future[str | None]]] = []
        self._admitting: asyncio.Task[None] | None = None

    async def admit(self, admission: Admission) -> str | None:
        """The handshake's role (None: refused), its presence row opened if admitted.

        Handshakes arriving together are checked together, in one write on the writer thread:
        each hop there costs a GIL handover, and a join burst measured as thousands of them.
        """
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._admissions.append((admission, future))
        if self._admitting is None or self._admitting.done():
            self._admitting = asyncio.get_running_loop().create_task(self._flush_admissions())
        return await future

    async def _flush_admissions(self) -> None:
        """Check pending handshakes in batches until none are left."""
        while self._admissions:
            batch, self._admissions = self._admissions, []
            try:
                roles = await self._write(
                    admit_connections, admissions=[admission for admission, _ in batch]
                )
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), role in zip(batch, roles, strict=True):
                if not future.done():
                    future.set_result(role)

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
                await self._write(presence_set_clients, clients=batch)
            except Exception:
                logger.warning("recording presence client ids failed", exc_info=True)

    async def heartbeat_loop(self) -> None:
        """Keep presence rows of live connections fresh."""
        while True:
            await asyncio.sleep(settings.PALIMPSEST_HEARTBEAT_SECONDS)
            try:
                await self._write(presence_touch, connection_ids=self._live_connections())
            except Exception:
                logger.warning("presence heartbeat failed", exc_info=True)

    async def drain(self) -> None:
        """Wait for the awareness ids noted so far to be written."""
        if self._clients_flush is not None:
            await asyncio.wait({self._clients_flush})
