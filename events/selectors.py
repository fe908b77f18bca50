"""Reading the event log: replay, tails and heads."""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import OuterRef, Subquery
from django.db.models.functions import Coalesce

from collab.models import Document
from collab.sync.compaction import replay_updates
from events.log import read_updates
from events.models import AuthorCheckpoint, EventSegment, Snapshot


@dataclass(frozen=True, slots=True)
class Replay:
    """What rebuilds a document: updates to apply in order, the seq they reach, the snapshot's."""

    updates: list[bytes]
    head: int
    snapshot_seq: int


def document_replay(*, document_id: uuid.UUID, at_seq: int | None = None) -> Replay:
    """The newest snapshot (at or before `at_seq`) plus the later events (up to `at_seq`)."""
    snapshots = Snapshot.objects.filter(document_id=document_id)
    if at_seq is not None:
        snapshots = snapshots.filter(upto_seq__lte=at_seq)
    snapshot = (
        snapshots.order_by("-upto_seq")
        .values_list("upto_seq", "state", "pending", "compressed")
        .first()
    )
    updates: list[bytes] = []
    head = snapshot_seq = 0
    if snapshot is not None:
        head = snapshot_seq = snapshot[0]
        state, pending = snapshot_content(*snapshot[1:])
        updates = replay_updates(state=state, pending=pending)
    for seq, update in events_after(document_id=document_id, after_seq=head, upto_seq=at_seq):
        updates.append(update)
        head = seq
    return Replay(updates=updates, head=head, snapshot_seq=snapshot_seq)


def snapshot_content(
    state: bytes | memoryview, pending: bytes | memoryview, compressed: bool
) -> tuple[bytes, bytes]:
    """A snapshot row's state and pending updates, decompressed."""
    if not compressed:
        return bytes(state), bytes(pending)
    return zlib.decompress(state), zlib.decompress(pending) if pending else b""


def document_head(*, document_id: uuid.UUID) -> int:
    """The document's highest seq (0 for an empty log or an unknown document)."""
    return Document.objects.filter(pk=document_id).values_list("head_seq", flat=True).first() or 0


def documents_to_compact(*, min_tail: int) -> list[uuid.UUID]:
    """Documents whose log has at least `min_tail` events after their newest snapshot.

    The head is the document's column; one index lookup per document for its snapshot.
    """
    snap = (
        Snapshot.objects.filter(document_id=OuterRef("pk"))
        .order_by("-upto_seq")
        .values("upto_seq")[:1]
    )
    rows = Document.objects.annotate(snap=Coalesce(Subquery(snap), 0)).values_list(
        "pk", "head_seq", "snap"
    )
    return [pk for pk, h, s in rows.iterator() if h - s >= min_tail]


def documents_to_pack(*, author_every: int, segment: int) -> list[uuid.UUID]:
    """Documents whose history compaction is due: `author_every` events past their newest
    authorship checkpoint, or a whole `segment` of cold (snapshotted) events still in rows."""
    author = (
        AuthorCheckpoint.objects.filter(document_id=OuterRef("pk"))
        .order_by("-upto_seq")
        .values("upto_seq")[:1]
    )
    snap = (
        Snapshot.objects.filter(document_id=OuterRef("pk"))
        .order_by("-upto_seq")
        .values("upto_seq")[:1]
    )
    packed = (
        EventSegment.objects.filter(document_id=OuterRef("pk"))
        .order_by("-last_seq")
        .values("last_seq")[:1]
    )
    rows = Document.objects.annotate(
        author=Coalesce(Subquery(author), 0),
        snap=Coalesce(Subquery(snap), 0),
        packed=Coalesce(Subquery(packed), 0),
    ).values_list("pk", "head_seq", "author", "snap", "packed")
    return [
        pk
        for pk, head, author_seq, snap_seq, packed_seq in rows.iterator()
        if head - author_seq >= author_every or snap_seq - packed_seq >= segment
    ]


def events_after(
    *,
    document_id: uuid.UUID,
    after_seq: int,
    limit: int | None = None,
    upto_seq: int | None = None,
) -> list[tuple[int, bytes]]:
    """(seq, update) of the document's events after `after_seq` (up to `upto_seq`), in order.

    Packed or not (events.log).
    """
    return read_updates(document_id, after=after_seq, upto=upto_seq, limit=limit)


def document_heads(*, document_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, int]:
    """The highest seq of each document that has events: one row per document, not a scan."""
    rows = Document.objects.filter(pk__in=list(document_ids), head_seq__gt=0).values_list(
        "pk", "head_seq"
    )
    return dict(rows)
