"""Reading the event log: replay, tails and heads."""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from django.db.models import Max

from events.models import Event, Snapshot


def document_replay(*, document_id: uuid.UUID) -> tuple[list[bytes], int]:
    """The newest snapshot's state plus every later update, and the head seq they reach."""
    snapshot = (
        Snapshot.objects.filter(document_id=document_id)
        .order_by("-upto_seq")
        .values_list("upto_seq", "state")
        .first()
    )
    updates: list[bytes] = []
    head = 0
    if snapshot is not None:
        head = snapshot[0]
        updates.append(bytes(snapshot[1]))
    for seq, update in events_after(document_id=document_id, after_seq=head):
        updates.append(update)
        head = seq
    return updates, head


def events_after(
    *, document_id: uuid.UUID, after_seq: int, limit: int | None = None
) -> list[tuple[int, bytes]]:
    """(seq, update) of the document's events after `after_seq`, in order."""
    rows = (
        Event.objects.filter(document_id=document_id, seq__gt=after_seq)
        .order_by("seq")
        .values_list("seq", "update")
    )
    if limit is not None:
        rows = rows[:limit]
    return [(seq, bytes(update)) for seq, update in rows.iterator(chunk_size=5000)]


def document_heads(*, document_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, int]:
    """The highest seq of each document that has events."""
    rows = (
        Event.objects.filter(document_id__in=list(document_ids))
        .values("document_id")
        .annotate(head=Max("seq"))
        .values_list("document_id", "head")
    )
    return dict(rows)
