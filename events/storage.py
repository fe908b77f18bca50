"""The event log as a live process writes it: one surface, with the database's specifics
behind it. On SQLite small batches go straight from the event loop while the write lock is
free, and the WAL is checkpointed off the append path. On PostgreSQL batches go from the
event loop over an async connection, in one round trip when numbered from heads this process
cached; the writer thread's append takes what that path cannot (its connection failed).
"""

from __future__ import annotations

import logging
import sqlite3
import time
import uuid
from collections.abc import Callable
from typing import TypeVar

from django.db import connections

from collab.models import Document
from events.services import (
    Head,
    HeadMoved,
    LogBusy,
    NewEvent,
    PostgresFastAppender,
    SqliteDirectAppender,
    event_append_batch,
)

logger = logging.getLogger(__name__)

R = TypeVar("R")

# Largest batch appended on the event loop itself (~90 us for one event, ~300 us for ten);
# bigger ones come from a backlog, where the writer thread's overlap with relaying pays.
DIRECT_BATCH_MAX = 32
# Documents whose heads a process keeps; past this the cache starts over (a miss costs one
# more round trip, to read the heads).
HEADS_CACHED_MAX = 10_000
# Optimistic appends of one batch (each after reading the heads again) before it takes the
# rows' locks: a lock held across this busy loop's turns stalls the other processes.
OPTIMISTIC_TRIES = 3
# After the async connection fails, appends go through the writer thread this long.
FAST_PATH_PAUSE_SECONDS = 5.0


class LogWriter:
    """Appends for one process: `append` on its writer thread, `append_now` on the loop."""

    def __init__(self) -> None:
        self._direct = _open_direct_appender()
        self._fast = _open_fast_appender()
        # Heads as of this process's last append to each document (PostgreSQL's fast path).
        self._heads: dict[uuid.UUID, Head] = {}
        self._fast_paused_until = 0.0

    @property
    def appends_now(self) -> bool:
        """Whether `append_now` can ever append (SQLite, with its own connection open)."""
        return self._direct is not None

    @property
    def needs_checkpoints(self) -> bool:
        """Whether `checkpoint` should run now and then (SQLite's WAL)."""
        return connections["default"].vendor == "sqlite"

    @property
    def appends_async(self) -> bool:
        """Whether `append_async` can ever append (PostgreSQL)."""
        return self._fast is not None

    def append(self, items: list[NewEvent]) -> list[int]:
        """Append a batch on the writer thread; their seqs."""
        heads = self._heads if self._fast is not None else None
        if heads is not None and len(heads) > HEADS_CACHED_MAX:
            heads.clear()
        return on_writer_connection(lambda: event_append_batch(items=items, heads_out=heads))

    async def append_async(self, items: list[NewEvent]) -> list[int] | None:
        """Append from the event loop (PostgreSQL): in one round trip when every head is
        cached and still the log's; heads missing or stale are read again (a round trip more)
        and, after OPTIMISTIC_TRIES conflicts, the batch is appended under the rows' locks.
        None (the writer thread then takes the batch) when the async connection fails."""
        fast = self._fast
        if fast is None or time.monotonic() < self._fast_paused_until:
            return None
        if len(self._heads) > HEADS_CACHED_MAX:
            self._heads.clear()
        docs = {item.document_id for item in items}
        try:
            for _ in range(OPTIMISTIC_TRIES):
                if not all(d in self._heads for d in docs):
                    await fast.read_heads(items, self._heads)
                try:
                    return await fast.append_cached(items, self._heads)
                except HeadMoved:
                    # Someone else appended to one of them: read the heads again.
                    for doc_id in docs:
                        self._heads.pop(doc_id, None)
            return await fast.append_locked(items, self._heads)
        except Document.DoesNotExist:
            pass  # the writer thread's append refuses it for good
        except Exception:
            logger.warning("async append of %d events failed", len(items), exc_info=True)
            self._fast_paused_until = time.monotonic() + FAST_PATH_PAUSE_SECONDS
            await fast.close()
        for doc_id in docs:
            self._heads.pop(doc_id, None)
        return None

    def forget_heads(self) -> None:
        """Drop every cached head (a batch failed: the log may not be what they say)."""
        self._heads.clear()

    def append_now(self, items: list[NewEvent]) -> list[int] | None:
        """Append a small batch on the loop if SQLite's write lock is free; else None (the
        writer thread then takes it)."""
        if self._direct is None or len(items) > DIRECT_BATCH_MAX:
            return None
        try:
            return self._direct.append(items)
        except LogBusy:
            return None
        except Exception:
            # The writer thread retries it, and reports it if it fails for good.
            logger.warning("direct append of %d events failed", len(items), exc_info=True)
            return None

    def close(self) -> None:
        """Close the loop's own SQLite connection, if one was opened."""
        if self._direct is not None:
            self._direct.close()

    async def aclose(self) -> None:
        """Close the loop's own PostgreSQL connection, if one was opened."""
        if self._fast is not None:
            await self._fast.close()


def on_writer_connection(fn: Callable[[], R]) -> R:
    """Run `fn` on the writer thread's connection, dropping it if it went bad (a broken
    connection is not reused for the retry)."""
    try:
        return fn()
    except Exception:
        connections["default"].close_if_unusable_or_obsolete()
        raise


# WAL frames (4 KiB pages) past which a checkpoint also tries to truncate the file.
_WAL_TRUNCATE_FRAMES = 16384


def checkpoint() -> int:
    """A passive WAL checkpoint: copies what it can without blocking the writer or readers.

    The WAL is reused from its start once all of it is copied and no reader still needs it,
    and then cut to `journal_size_limit` (settings). If readers kept it from restarting until
    it passed _WAL_TRUNCATE_FRAMES, a TRUNCATE checkpoint is tried, waiting at most 100 ms
    for them (it holds new writers back meanwhile). Returns the WAL's frames before.
    """
    with connections["default"].cursor() as cursor:
        cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")
        _, frames, _ = cursor.fetchone()
        if frames > _WAL_TRUNCATE_FRAMES:
            cursor.execute("PRAGMA busy_timeout")
            (timeout,) = cursor.fetchone()
            cursor.execute("PRAGMA busy_timeout = 100")
            try:
                cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                cursor.execute(f"PRAGMA busy_timeout = {int(timeout)}")
        return int(frames)


def _open_fast_appender() -> PostgresFastAppender | None:
    """PostgreSQL's one-round-trip appender, with Django's connection settings; None elsewhere."""
    db = connections["default"]
    if db.vendor != "postgresql":
        return None
    params = db.get_connection_params()
    # Django's cursor class and adapters are for its own connections; this one only writes.
    for name in ("cursor_factory", "context"):
        params.pop(name, None)
    return PostgresFastAppender("", params)


def _open_direct_appender() -> SqliteDirectAppender | None:
    """The event loop's own SQLite connection for appends; None elsewhere or if it won't open."""
    db = connections["default"]
    if db.vendor != "sqlite":
        return None
    try:
        return SqliteDirectAppender(
            str(db.settings_dict["NAME"]), db.settings_dict["OPTIONS"].get("init_command", "")
        )
    except sqlite3.Error:
        logger.warning("appending through the writer thread only", exc_info=True)
        return None
