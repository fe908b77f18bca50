"""Client-id claims of a process's sockets, written to the database in batches.

One transaction for every claim waiting at that moment (events.authors.clients_claim): a
burst of new sessions costs a few transactions rather than one each.
"""

from __future__ import annotations

import asyncio
import uuid

from channels.db import database_sync_to_async

from events.authors import Claim, clients_claim

# The most claims one transaction takes.
BATCH_MAX = 500


class Claims:
    """Queues claims and answers each with the id's owner once its batch is written."""

    def __init__(self) -> None:
        self._waiting: list[tuple[Claim, asyncio.Future[int | None]]] = []
        self._task: asyncio.Task[None] | None = None

    def submit(
        self, document_id: uuid.UUID, client_id: int, actor_id: int | None
    ) -> asyncio.Future[int | None]:
        """Claim `client_id` for `actor_id` unless taken; resolves to the account owning it."""
        future: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._waiting.append((Claim(document_id, client_id, actor_id), future))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._drain())
        return future

    async def drain(self) -> None:
        """Wait until the claims asked for so far are written (or failed)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def _drain(self) -> None:
        """Write the waiting claims, a batch at a time, until none waits."""
        while self._waiting:
            batch, self._waiting = self._waiting[:BATCH_MAX], self._waiting[BATCH_MAX:]
            try:
                owners = await database_sync_to_async(clients_claim)([c for c, _ in batch])
            except Exception as exc:  # each waiting socket decides what a failure means
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for claim, future in batch:
                if not future.done():
                    future.set_result(owners[(claim.document_id, claim.client_id)])
