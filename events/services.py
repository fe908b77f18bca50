"""Appending to the event log: the only code that writes events."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from collab.models import Document
from events.models import Event, EventKind

# Rows per INSERT statement: one statement is one trip into the driver (and one GIL release
# and re-acquire); 7 columns x 1000 rows stays under SQLite's 32766-parameter limit.
_ROWS_PER_INSERT = 1000
_COLUMNS = ("document_id", "seq", "kind", "update", "actor_id", "yjs_client_id", "created_at")


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An update accepted by the server, waiting for its seq."""

    document_id: uuid.UUID
    update: bytes
    actor_id: int | None
    yjs_client_id: int | None = None
    kind: str = EventKind.UPDATE


def event_append_batch(*, items: Sequence[NewEvent]) -> list[int]:
    """Append events in one transaction (group commit); returns each item's seq, in order.

    Raw SQL, a fixed handful of statements per batch: the writer thread shares the GIL with
    the event loop, and building ORM queries cost more than running them (~1 ms a batch).
    """
    if not items:
        return []
    document_field = Event._meta.get_field("document")
    doc_values = {
        doc_id: document_field.get_db_prep_value(doc_id, connection)
        for doc_id in sorted({item.document_id for item in items})
    }
    with transaction.atomic(), connection.cursor() as cursor:
        heads = _lock_and_read_heads(cursor, doc_values)
        seqs = []
        for item in items:
            heads[item.document_id] += 1
            seqs.append(heads[item.document_id])
        _insert_rows(cursor, items, seqs, doc_values, timezone.now())
    return seqs


def _lock_and_read_heads(cursor: Any, doc_values: dict[uuid.UUID, Any]) -> dict[uuid.UUID, int]:
    """Lock the documents' rows and read each one's highest seq."""
    ops = connection.ops
    placeholders = ", ".join(["%s"] * len(doc_values))
    params = list(doc_values.values())
    document_table = ops.quote_name(Document._meta.db_table)
    # Locking the rows (ordered, so two processes cannot deadlock) makes other processes'
    # appenders to these documents wait for our commit, so MAX(seq)+1 is never taken twice.
    # SQLite has no FOR UPDATE: its BEGIN IMMEDIATE already holds the one write lock.
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    cursor.execute(
        f"SELECT {ops.quote_name('id')} FROM {document_table} "
        f"WHERE {ops.quote_name('id')} IN ({placeholders}) ORDER BY 1{lock}",
        params,
    )
    if len(cursor.fetchall()) != len(doc_values):
        raise Document.DoesNotExist("a document was deleted while edits to it were queued")
    by_value = {value: doc_id for doc_id, value in doc_values.items()}
    heads = dict.fromkeys(doc_values, 0)
    cursor.execute(
        f"SELECT {ops.quote_name('document_id')}, MAX({ops.quote_name('seq')}) "
        f"FROM {ops.quote_name(Event._meta.db_table)} "
        f"WHERE {ops.quote_name('document_id')} IN ({placeholders}) "
        f"GROUP BY {ops.quote_name('document_id')}",
        params,
    )
    for value, head in cursor.fetchall():
        heads[by_value[value]] = head
    return heads


def _insert_rows(
    cursor: Any,
    items: Sequence[NewEvent],
    seqs: list[int],
    doc_values: dict[uuid.UUID, Any],
    created_at: datetime,
) -> None:
    """INSERT the rows, many per statement."""
    ops = connection.ops
    stamp = Event._meta.get_field("created_at").get_db_prep_value(created_at, connection)
    rows = [
        (
            doc_values[item.document_id],
            seq,
            item.kind,
            item.update,
            item.actor_id,
            item.yjs_client_id,
            stamp,
        )
        for item, seq in zip(items, seqs, strict=True)
    ]
    head = "INSERT INTO {} ({}) VALUES ".format(
        ops.quote_name(Event._meta.db_table), ", ".join(ops.quote_name(c) for c in _COLUMNS)
    )
    one_row = "(" + ", ".join(["%s"] * len(_COLUMNS)) + ")"
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        chunk = rows[start : start + _ROWS_PER_INSERT]
        cursor.execute(
            head + ", ".join([one_row] * len(chunk)), [value for row in chunk for value in row]
        )
