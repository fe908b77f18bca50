"""Appending to the event log: the only code that writes events."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from django.db import transaction
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
            locked = Document.objects.select_for_update().filter(pk=document_id).exists()
            if not locked:
                raise Document.DoesNotExist(f"document {document_id} is gone")
            head = Event.objects.filter(document_id=document_id).aggregate(m=Max("seq"))["m"]
            heads[document_id] = head or 0
        rows, seqs = [], []
        for item in items:
            heads[item.document_id] += 1
            seq = heads[item.document_id]
            seqs.append(seq)
            rows.append(
                Event(
                    document_id=item.document_id,
                    seq=seq,
                    kind=item.kind,
                    update=item.update,
                    actor_id=item.actor_id,
                    yjs_client_id=item.yjs_client_id,
                    created_at=now,
                )
            )
        Event.objects.bulk_create(rows)
    return seqs
