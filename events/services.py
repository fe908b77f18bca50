"""Appending to the event log: the only code that writes events."""

from __future__ import annotations

import functools
import sqlite3
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from django.db import DEFAULT_DB_ALIAS, connections
from django.utils import timezone

from collab.models import Document
from events.chain import GENESIS, chain_link, document_field, time_field
from events.models import Event, EventKind

# Rows per INSERT statement: one statement is one trip into the driver (and one GIL release
# and re-acquire); 8 columns x 1000 rows stays under SQLite's 32766-parameter limit.
_ROWS_PER_INSERT = 1000
_COLUMNS = (
    "document_id",
    "seq",
    "kind",
    "update",
    "actor_id",
    "yjs_client_id",
    "created_at",
    "hash",
)


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An update accepted by the server, waiting for its seq."""

    document_id: uuid.UUID
    update: bytes
    actor_id: int | None
    yjs_client_id: int | None = None
    kind: str = EventKind.UPDATE


def event_append_batch(
    *, items: Sequence[NewEvent], heads_out: dict[uuid.UUID, Head] | None = None
) -> list[int]:
    """Append events in one transaction (group commit); returns each item's seq, in order.

    Raw SQL on the driver's own cursor, a fixed handful of statements per batch: the writer
    thread shares the GIL with the event loop, and Django's transaction and cursor wrappers
    cost more than SQLite's own work (measured ~200 us against ~80 us per one-event batch).
    Inside a caller's transaction the events join it; otherwise they commit here.
    """
    if not items:
        return []
    db = connections[DEFAULT_DB_ALIAS]  # the proxy `connection` costs a lookup per attribute
    own_transaction = not db.in_atomic_block
    db.ensure_connection()
    # Driver errors become Django's, which also marks a broken connection for closing.
    with db.wrap_database_errors:
        cursor = db.connection.cursor()
        try:
            return _append(cursor, items, own_transaction=own_transaction, heads_out=heads_out)
        finally:
            cursor.close()


class LogBusy(Exception):
    """Another connection holds SQLite's write lock; nothing was written."""


class SqliteDirectAppender:
    """A private SQLite connection that appends a batch at once or raises LogBusy, never waiting.

    The event loop appends through it without a hop to the writer thread and back (measured
    ~0.8 ms of the keystroke-to-peer time on an idle server). It must never sleep in SQLite's
    busy handler, which would stall every socket: when another connection holds the write
    lock it gives up at BEGIN, and the caller appends through `event_append_batch` instead.
    """

    def __init__(self, path: str, init_command: str) -> None:
        self._db = sqlite3.connect(path, timeout=0, isolation_level=None)
        # The same pragmas as Django's own connections (WAL, no fsync per commit, no
        # automatic checkpoints): the caller passes the database's `init_command`. They may
        # meet another connection's brief write (beat's tick, a presence row), so they wait
        # for it, once, rather than lose this path for the process's life; appends never wait.
        self._db.execute("PRAGMA busy_timeout = 2000")
        self._db.executescript(init_command)
        self._db.execute("PRAGMA busy_timeout = 0")

    def append(self, items: Sequence[NewEvent]) -> list[int]:
        """Append events in one transaction; their seqs, in order."""
        cursor = self._db.cursor()
        try:
            return _append(cursor, items, own_transaction=True)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode == sqlite3.SQLITE_BUSY and not self._db.in_transaction:
                raise LogBusy(str(exc)) from exc
            raise
        finally:
            if self._db.in_transaction:  # a failed COMMIT or ROLLBACK leaves nothing open
                self._db.rollback()
            cursor.close()

    def close(self) -> None:
        """Close the connection."""
        self._db.close()


# A document's head as an appender knows it: its last seq and that event's hash.
Head = tuple[int, bytes]


class HeadMoved(Exception):
    """Another writer appended to a document since its head was cached; nothing was written."""


class PostgresFastAppender:
    """Appends on the event loop over its own async connection: no writer thread, whose every
    return from the driver waits for the GIL while the loop is busy (measured: the thread
    path's p99 at 40 x 5 was 3.3x SQLite's).

    `append_cached` is the common case of a live process, one round trip: every document of
    the batch has a head cached from this process's last append, so the rows are numbered and
    chained without reading, and the head updates (taking the documents' row locks, in id
    order as every append does) and the multi-row INSERT go out in one pipeline with BEGIN and
    COMMIT. If another writer appended meanwhile, the INSERT meets the (document, seq) unique
    key and the whole transaction rolls back: HeadMoved.

    `append_locked` reads the heads under the rows' locks first (two round trips): for heads
    not cached, and for documents another process writes too (with clients of one document on
    two processes, optimism would fail batch after batch).
    """

    def __init__(self, conninfo: str, connect_kwargs: dict[str, Any]) -> None:
        self._conninfo = conninfo
        self._kwargs = connect_kwargs
        self._conn: Any = None
        db = connections[DEFAULT_DB_ALIAS]
        self._sql = _sql_for(db.vendor)
        self._document_field = Event._meta.get_field("document")
        self._created_field = Event._meta.get_field("created_at")

    async def _connection(self) -> Any:
        """The open async connection (opened on first use, and again after a failure)."""
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(
                self._conninfo, autocommit=True, **self._kwargs
            )
        return self._conn

    def _doc_values(self, items: Sequence[NewEvent]) -> dict[uuid.UUID, Any]:
        """The batch's documents, in id order, with their values as the database takes them."""
        db = connections[DEFAULT_DB_ALIAS]
        return {
            doc_id: self._document_field.get_db_prep_value(doc_id, db)
            for doc_id in sorted({item.document_id for item in items})
        }

    async def append_cached(
        self, items: Sequence[NewEvent], heads: dict[uuid.UUID, Head]
    ) -> list[int]:
        """Append with the cached `heads` (which it advances on success); their seqs."""
        conn = await self._connection()
        doc_values = self._doc_values(items)
        working = {doc_id: heads[doc_id] for doc_id in doc_values}
        try:
            async with conn.pipeline():
                cursor = conn.cursor()
                await cursor.execute("BEGIN")
                numbered = await self._write(cursor, items, doc_values, working)
        except psycopg.errors.UniqueViolation as exc:
            await self._rollback()
            raise HeadMoved(str(exc)) from exc
        except BaseException:
            await self._rollback()
            raise
        heads.update(working)
        return numbered

    async def read_heads(self, items: Sequence[NewEvent], heads: dict[uuid.UUID, Head]) -> None:
        """Read the batch's documents' heads into `heads`, without locking anything."""
        conn = await self._connection()
        doc_values = self._doc_values(items)
        params = list(doc_values.values())
        cursor = conn.cursor()
        await cursor.execute(self._sql.heads_unlocked.format(self._sql.marks(len(params))), params)
        rows = await cursor.fetchall()
        if len(rows) != len(params):
            raise Document.DoesNotExist("a document was deleted while edits were queued")
        by_value = {value: doc_id for doc_id, value in doc_values.items()}
        for value, head, digest in rows:
            heads[by_value[value]] = (head, bytes(digest)) if head else (0, GENESIS)

    async def append_locked(
        self, items: Sequence[NewEvent], heads: dict[uuid.UUID, Head]
    ) -> list[int]:
        """Lock the documents' rows, read their heads, append; `heads` gets the new ones."""
        conn = await self._connection()
        doc_values = self._doc_values(items)
        params = list(doc_values.values())
        try:
            async with conn.pipeline():
                cursor = conn.cursor()
                await cursor.execute("BEGIN")
                await cursor.execute(self._sql.heads.format(self._sql.marks(len(params))), params)
                rows = await cursor.fetchall()
                if len(rows) != len(params):
                    raise Document.DoesNotExist("a document was deleted while edits were queued")
                by_value = {value: doc_id for doc_id, value in doc_values.items()}
                working = {
                    by_value[value]: (head, bytes(digest)) if head else (0, GENESIS)
                    for value, head, digest in rows
                }
                numbered = await self._write(cursor, items, doc_values, working)
        except BaseException:
            await self._rollback()
            raise
        heads.update(working)
        return numbered

    async def _write(
        self,
        cursor: Any,
        items: Sequence[NewEvent],
        doc_values: dict[uuid.UUID, Any],
        working: dict[uuid.UUID, Head],
    ) -> list[int]:
        """Number and chain from `working` (advancing it), then queue the head updates, the
        INSERT and COMMIT on the pipeline; the seqs."""
        db = connections[DEFAULT_DB_ALIAS]
        now = timezone.now()
        stamp = self._created_field.get_db_prep_value(now, db)
        numbered = _number_and_chain(items, working, now)
        for doc_id, value in doc_values.items():
            await cursor.execute(self._sql.set_head, (*working[doc_id], value))
        rows = _rows(items, numbered, doc_values, stamp)
        for start in range(0, len(rows), _ROWS_PER_INSERT):
            chunk = rows[start : start + _ROWS_PER_INSERT]
            await cursor.execute(
                self._sql.insert + ", ".join([self._sql.row] * len(chunk)),
                [value for row in chunk for value in row],
            )
        await cursor.execute("COMMIT")
        return [seq for seq, _ in numbered]

    async def _rollback(self) -> None:
        """Leave no failed transaction open; a connection that cannot is closed."""
        conn = self._conn
        if conn is None or conn.closed:
            return
        try:
            if conn.info.transaction_status != 0:  # not IDLE
                await conn.execute("ROLLBACK")
        except Exception:
            await conn.close()

    async def close(self) -> None:
        """Close the connection, if open."""
        if self._conn is not None and not self._conn.closed:
            await self._conn.close()
        self._conn = None


def _append(
    cursor: Any,
    items: Sequence[NewEvent],
    *,
    own_transaction: bool,
    heads_out: dict[uuid.UUID, Head] | None = None,
) -> list[int]:
    """Number and insert `items` on a driver cursor, in a transaction of its own if asked;
    the documents' new heads go to `heads_out` (a process's cache) once committed."""
    if not items:
        return []
    # Only the default database's operations and field adapters are used here: no queries.
    db = connections[DEFAULT_DB_ALIAS]
    sql = _sql_for(db.vendor)
    document_field = Event._meta.get_field("document")
    doc_values = {
        doc_id: document_field.get_db_prep_value(doc_id, db)
        for doc_id in sorted({item.document_id for item in items})
    }
    if own_transaction:
        cursor.execute(sql.begin)
    try:
        heads = _lock_and_read_heads(cursor, sql, doc_values)
        # One time for the batch, read under the lock so a document's times follow its seqs.
        # The hash covers this datetime, and what the database stores (SQLite: naive UTC
        # text; PostgreSQL: timestamptz) reads back equal to it, microseconds and all
        # (tests/integration/test_tamper.py).
        now = timezone.now()
        stamp = Event._meta.get_field("created_at").get_db_prep_value(now, db)
        rows = _number_and_chain(items, heads, now)
        _insert_rows(cursor, sql, items, rows, doc_values, stamp)
        cursor.executemany(
            sql.set_head,
            [(heads[doc][0], heads[doc][1], value) for doc, value in doc_values.items()],
        )
    except BaseException:
        if own_transaction:
            cursor.execute("ROLLBACK")
        raise
    if own_transaction:
        cursor.execute("COMMIT")
    if heads_out is not None and own_transaction:  # else the caller may still roll back
        heads_out.update(heads)
    return [row[0] for row in rows]


def _number_and_chain(
    items: Sequence[NewEvent], heads: dict[uuid.UUID, tuple[int, bytes]], now: datetime
) -> list[tuple[int, bytes]]:
    """Each item's (seq, hash), going on from its document's head (and advancing `heads`)."""
    time = time_field(now)
    documents = {doc_id: document_field(_as_uuid(doc_id)) for doc_id in heads}
    rows = []
    for item in items:
        seq, prev = heads[item.document_id]
        seq += 1
        digest = chain_link(
            prev,
            documents[item.document_id],
            seq,
            item.kind,
            item.actor_id,
            item.yjs_client_id,
            time,
            item.update,
        )
        heads[item.document_id] = (seq, digest)
        rows.append((seq, digest))
    return rows


def _as_uuid(value: Any) -> uuid.UUID:
    """The UUID the database hands back for this document id (a caller may pass a string)."""
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


@dataclass(frozen=True)
class _Sql:
    """The append's statements in one database's dialect and parameter style."""

    begin: str
    mark: str
    # Reads the documents' heads; on PostgreSQL it also locks their rows (SQLite's begin
    # statement already serialises writers).
    heads: str
    # The same read without locks (an optimistic appender re-reading stale heads).
    heads_unlocked: str
    set_head: str
    insert: str
    row: str

    def marks(self, count: int) -> str:
        """`count` parameter placeholders."""
        return ", ".join([self.mark] * count)


@functools.cache
def _sql_for(vendor: str) -> _Sql:
    """Build the statements once per database vendor."""
    db = connections[DEFAULT_DB_ALIAS]
    q = db.ops.quote_name
    mark = "?" if vendor == "sqlite" else "%s"
    documents, events = q(Document._meta.db_table), q(Event._meta.db_table)
    doc_id = q("id")
    return _Sql(
        # SQLite: IMMEDIATE takes the one write lock now, before the heads are read.
        begin="BEGIN IMMEDIATE" if vendor == "sqlite" else "BEGIN",
        mark=mark,
        # The head is a column of the document's row: one probe per document. Locking the rows
        # (ordered, so two processes cannot deadlock) makes other processes' appenders to
        # these documents wait for our commit; the lock then returns the rows as that commit
        # left them (PostgreSQL re-reads a row it waited for), heads included. NO KEY: a
        # transaction inserting a row that refers to the document (an export, a membership)
        # checks its foreign key with a KEY SHARE lock, which FOR UPDATE would block while
        # we wait on a lock of theirs (seen: a deadlock with an export request).
        heads=(
            f"SELECT {doc_id}, {q('head_seq')}, {q('head_hash')} FROM {documents} "
            f"WHERE {doc_id} IN ({{}})"
            + (" ORDER BY 1 FOR NO KEY UPDATE" if db.features.has_select_for_update else "")
        ),
        heads_unlocked=(
            f"SELECT {doc_id}, {q('head_seq')}, {q('head_hash')} FROM {documents} "
            f"WHERE {doc_id} IN ({{}})"
        ),
        set_head=(
            f"UPDATE {documents} SET {q('head_seq')} = {mark}, {q('head_hash')} = {mark} "
            f"WHERE {doc_id} = {mark}"
        ),
        insert=f"INSERT INTO {events} ({', '.join(q(c) for c in _COLUMNS)}) VALUES ",
        row="(" + ", ".join([mark] * len(_COLUMNS)) + ")",
    )


def _lock_and_read_heads(
    cursor: Any, sql: _Sql, doc_values: dict[uuid.UUID, Any]
) -> dict[uuid.UUID, tuple[int, bytes]]:
    """Lock the documents' rows and read each one's head: its last seq and that event's hash."""
    params = list(doc_values.values())
    cursor.execute(sql.heads.format(sql.marks(len(params))), params)
    rows = cursor.fetchall()
    if len(rows) != len(params):
        raise Document.DoesNotExist("a document was deleted while edits to it were queued")
    by_value = {value: doc_id for doc_id, value in doc_values.items()}
    # bytes(): sqlite3 and psycopg give bytes, psycopg2 a memoryview.
    return {
        by_value[value]: (head, bytes(digest)) if head else (0, GENESIS)
        for value, head, digest in rows
    }


def _insert_rows(
    cursor: Any,
    sql: _Sql,
    items: Sequence[NewEvent],
    numbered: list[tuple[int, bytes]],
    doc_values: dict[uuid.UUID, Any],
    stamp: Any,
) -> None:
    """INSERT the rows, many per statement."""
    rows = _rows(items, numbered, doc_values, stamp)
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        chunk = rows[start : start + _ROWS_PER_INSERT]
        cursor.execute(
            sql.insert + ", ".join([sql.row] * len(chunk)),
            [value for row in chunk for value in row],
        )


def _rows(
    items: Sequence[NewEvent],
    numbered: list[tuple[int, bytes]],
    doc_values: dict[uuid.UUID, Any],
    stamp: Any,
) -> list[tuple[Any, ...]]:
    """The INSERT's parameters, one tuple per event, in _COLUMNS order."""
    return [
        (
            doc_values[item.document_id],
            seq,
            item.kind,
            item.update,
            item.actor_id,
            item.yjs_client_id,
            stamp,
            digest,
        )
        for item, (seq, digest) in zip(items, numbered, strict=True)
    ]
