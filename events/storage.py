"""The event log as a live process writes it: one surface, with the database's specifics
behind it. On SQLite small batches go straight from the event loop while the write lock is
free, and the WAL is checkpointed off the append path; PostgreSQL needs neither.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Sequence
from typing import TypeVar

from django.db import connections

from events.services import LogBusy, NewEvent, SqliteDirectAppender, event_append_batch

logger = logging.getLogger(__name__)

R = TypeVar("R")

# Largest batch appended on the event loop itself (~90 us for one event, ~300 us for ten);
# bigger ones come from a backlog, where the writer thread's overlap with relaying pays.
DIRECT_BATCH_MAX = 32


class LogWriter:
    """Appends for one process: `append` on its writer thread, `append_now` on the loop."""

    def __init__(self) -> None:
        self._direct = _open_direct_appender()

    @property
    def appends_now(self) -> bool:
        """Whether `append_now` can ever append (SQLite, with its own connection open)."""
        return self._direct is not None

    @property
    def needs_checkpoints(self) -> bool:
        """Whether `checkpoint` should run now and then (SQLite's WAL)."""
        return connections["default"].vendor == "sqlite"

    def append(self, items: Sequence[NewEvent]) -> list[int]:
        """Append a batch on the writer thread; their seqs."""
        return on_writer_connection(lambda: event_append_batch(items=items))

    def append_now(self, items: Sequence[NewEvent]) -> list[int] | None:
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
        """Close the loop's own connection, if one was opened."""
        if self._direct is not None:
            self._direct.close()


def on_writer_connection(fn: Callable[[], R]) -> R:
    """Run `fn` on the writer thread's connection, dropping it if it went bad (a broken
    connection is not reused for the retry)."""
    try:
        return fn()
    except Exception:
        connections["default"].close_if_unusable_or_obsolete()
        raise


def checkpoint() -> None:
    """A passive WAL checkpoint: copies what it can without blocking the writer or readers."""
    with connections["default"].cursor() as cursor:
        cursor.execute("PRAGMA wal_checkpoint(PASSIVE)")


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
