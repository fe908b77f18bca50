"""Reading past events, packed or not: the one surface the history, replays, exports,
verification and the admin read the log through.

Cold events live in packed segments (events/packing.py), the rest in rows. The packer writes
a segment and deletes its rows later (`events.compaction.log_pack`), so a reader may find both
for a while: it takes the segment and only the rows after it, never an event twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import NamedTuple

from django.db.models import F, OuterRef, Subquery, Sum
from django.db.models.functions import Coalesce

from events.models import Event, EventSegment
from events.packing import SegmentCorrupt, unpack, unpack_updates

# Segments fetched per round trip (each is a few tens of KB) and rows per round trip.
_SEGMENT_CHUNK = 8
_ROW_CHUNK = 2000


class LoggedEvent(NamedTuple):
    """One event of the log, however it is stored."""

    seq: int
    kind: str
    actor_id: int | None
    yjs_client_id: int | None
    created_at: datetime
    update: bytes
    # The stored hash: all 32 bytes for a row, its first HASH_PREFIX bytes in a segment.
    hash: bytes
    # A segment's last event carries the segment's root (its full chain hash); else None.
    root: bytes | None = None


def read_log(
    document_id: uuid.UUID, *, after: int = 0, upto: int | None = None
) -> Iterator[LoggedEvent]:
    """The document's events after seq `after` (up to `upto`), in seq order, streamed."""
    next_seq = after + 1
    for segment in _segments(document_id, after, upto):
        first_seq, last_seq, data, root = segment
        try:
            events = unpack(bytes(data), first_seq)
        except SegmentCorrupt as exc:
            raise SegmentCorrupt(f"segment {first_seq}..{last_seq}: {exc}", first_seq) from exc
        for index, event in enumerate(events):
            if event.seq < next_seq or (upto is not None and event.seq > upto):
                continue
            last = index == len(events) - 1
            yield LoggedEvent(*event, root=bytes(root) if last else None)
        next_seq = max(next_seq, last_seq + 1)
    rows = Event.objects.filter(document_id=document_id, seq__gte=next_seq)
    if upto is not None:
        rows = rows.filter(seq__lte=upto)
    fields = ("seq", "kind", "actor_id", "yjs_client_id", "created_at", "update", "hash")
    for seq, kind, actor_id, client, created_at, update, stored in (
        rows.order_by("seq").values_list(*fields).iterator(chunk_size=_ROW_CHUNK)
    ):
        # bytes(): psycopg gives memoryviews; a NULL hash reads as empty (it matches nothing).
        yield LoggedEvent(
            seq, kind, actor_id, client, created_at, bytes(update), bytes(stored or b"")
        )


def read_updates(
    document_id: uuid.UUID, *, after: int = 0, upto: int | None = None, limit: int | None = None
) -> list[tuple[int, bytes]]:
    """(seq, update) of the events after `after` (up to `upto`, at most `limit`), in order."""
    out: list[tuple[int, bytes]] = []
    next_seq = after + 1
    for first_seq, last_seq, data, _ in _segments(document_id, after, upto):
        out.extend(
            (seq, update)
            for seq, update in unpack_updates(bytes(data), first_seq)
            if seq >= next_seq and (upto is None or seq <= upto)
        )
        next_seq = max(next_seq, last_seq + 1)
        if limit is not None and len(out) >= limit:
            return out[:limit]
    rows = Event.objects.filter(document_id=document_id, seq__gte=next_seq)
    if upto is not None:
        rows = rows.filter(seq__lte=upto)
    values = rows.order_by("seq").values_list("seq", "update")
    if limit is not None:
        values = values[: limit - len(out)]
    out.extend((seq, bytes(update)) for seq, update in values.iterator(chunk_size=_ROW_CHUNK))
    return out


def _segments(
    document_id: uuid.UUID, after: int, upto: int | None
) -> Iterator[tuple[int, int, bytes | memoryview, bytes | memoryview]]:
    """(first_seq, last_seq, data, root) of the segments holding events in (after, upto]."""
    segments = EventSegment.objects.filter(document_id=document_id, last_seq__gt=after)
    if upto is not None:
        segments = segments.filter(first_seq__lte=upto)
    yield from (
        segments.order_by("first_seq")
        .values_list("first_seq", "last_seq", "data", "last_hash")
        .iterator(chunk_size=_SEGMENT_CHUNK)
    )


def events_logged(document_id: uuid.UUID | None = None) -> int:
    """How many events the log holds (one document's, or all), each once, packed or not."""
    segments = EventSegment.objects.all()
    rows = Event.objects.all()
    if document_id is not None:
        segments = segments.filter(document_id=document_id)
        rows = rows.filter(document_id=document_id)
    packed = segments.aggregate(n=Sum(F("last_seq") - F("first_seq") + 1))["n"] or 0
    # Rows a segment covers are still there during the packing grace: not counted twice.
    packed_to = (
        EventSegment.objects.filter(document_id=OuterRef("document_id"))
        .order_by("-last_seq")
        .values("last_seq")[:1]
    )
    unpacked = rows.annotate(packed_to=Coalesce(Subquery(packed_to), 0)).filter(
        seq__gt=F("packed_to")
    )
    return int(packed) + unpacked.count()
