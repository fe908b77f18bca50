"""Appending to the event log: the only code that writes events."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from collab.models import Document
from events.models import Event, EventKind


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An update accepted by the server, waiting for its seq."""

    document_id: uuid.UUID
    update: bytes
    actor_id: int | None
    yjs_client_id: int | None = None
    kind: str = EventKind.UPDATE


def event_append_batch(*, items: Sequence[NewEvent]) -> list[int]:
    """Append events in one transaction (group commit); returns each item's seq, in order."""
    if not items:
        return []
    now = timezone.now()
    with transaction.atomic():
        heads: dict[uuid.UUID, int] = {}
        # Sorted, so two processes locking the same documents can never deadlock.
        for document_id in sorted({item.document_id for item in items}):
            # The row lock makes other processes' appenders to this document wait until we
            # commit, so MAX(seq)+1 cannot be taken twice (SQLite: BEGIN IMMEDIATE does this).
            locked = list(
                Document.objects.select_for_update().filter(pk=document_id).values_list("pk")
            )
            if not locked:
                raise Document.DoesNotExist(f"document {document_id} is gone")
            head = Event.objects.filter(document_id=document_id).aggregate(m=Max("seq"))["m"]
            heads[document_id] = head or 0
        seqs = []
        for item in items:
            heads[item.document_id] += 1
            seqs.append(heads[item.document_id])
        _insert_rows(items, seqs, now)
    return seqs


def _insert_rows(items: Sequence[NewEvent], seqs: list[int], created_at: datetime) -> None:
    """INSERT the rows with one executemany.

    bulk_create builds and adapts every value in Python and fetches ids back; on the ingest
    path that cost more than the commit. Only the uuid and the timestamp need adapting.
    """
    meta = Event._meta
    document_field = meta.get_field("document")
    columns = ("document_id", "seq", "kind", "update", "actor_id", "yjs_client_id", "created_at")
    ops = connection.ops
    sql = "INSERT INTO {} ({}) VALUES ({})".format(
        ops.quote_name(meta.db_table),
        ", ".join(ops.quote_name(c) for c in columns),
        ", ".join(["%s"] * len(columns)),
    )
    stamp = meta.get_field("created_at").get_db_prep_save(created_at, connection)
    doc_values: dict[uuid.UUID, Any] = {}
    params = []
    for item, seq in zip(items, seqs, strict=True):
        doc_value = doc_values.get(item.document_id)
        if doc_value is None:
            doc_value = document_field.get_db_prep_save(item.document_id, connection)
            doc_values[item.document_id] = doc_value
        params.append(
            (doc_value, seq, item.kind, item.update, item.actor_id, item.yjs_client_id, stamp)
        )
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)
