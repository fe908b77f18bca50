"""Compaction requests: ask a worker to snapshot a room's document once its tail is long."""

from __future__ import annotations

import asyncio
import logging
import uuid

from django.conf import settings

from collab.realtime.rooms import Room
from tasks.tasks import compact_document

logger = logging.getLogger(__name__)


def maybe_compact(room: Room) -> None:
    """Ask for a snapshot of the room's document once its log tail is long enough.

    Asked once per threshold's worth of events; the beat sweep catches any request lost on
    the way (the task is idempotent, so a duplicate costs one no-op).
    """
    threshold = settings.PALIMPSEST_COMPACT_TAIL_EVENTS
    if threshold <= 0 or room.seqs.contiguous - room.compacted_to < threshold:
        return
    room.compacted_to = room.seqs.contiguous
    # Publishing to a Redis broker is network I/O: not on the event loop.
    loop = asyncio.get_running_loop()
    future = loop.run_in_executor(None, _request_compaction, room.document_id)
    future.add_done_callback(_log_failure)


def _request_compaction(document_id: uuid.UUID) -> None:
    """Queue the compaction task for a document."""
    compact_document.delay(str(document_id))


def _log_failure(future: asyncio.Future[None]) -> None:
    """Log a failed request; the beat sweep will ask again."""
    if not future.cancelled() and future.exception() is not None:
        logger.warning("asking for a compaction failed: %s", future.exception())
