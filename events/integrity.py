"""Checking the event log's hash chain (events/chain.py): the first broken link per document.

What it finds: an event whose content or metadata was edited (its hash no longer matches, or,
if the hash was rewritten to match, the next event's does not), an event deleted from the
middle (a gap in seq), and a missing seq 1. A cut tail is seen when the document's recorded
head (written by every append, in its transaction) or a snapshot claims a seq beyond the log's
last event, or the head's hash is not the last event's; deleting the newest events and
rewriting that head as well leaves a shorter chain that is valid, which only a head hash kept
outside the database (an anchor) would show.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum

from django.db.models import Max

from collab.models import Document
from events.chain import GENESIS, chain_link, document_field, time_field
from events.log import read_log
from events.models import Event, EventSegment, Snapshot
from events.packing import SegmentCorrupt


class Break(StrEnum):
    """Why a link of the chain is broken."""

    EDITED = "edited"  # the stored hash is not the hash of this event over the previous one
    MISSING = "missing"  # this seq is not in the log, but a later one is
    TRUNCATED = "truncated"  # a snapshot covers this seq, which the log no longer has


@dataclass(frozen=True, slots=True)
class ChainReport:
    """The result of checking one document's log."""

    document_id: uuid.UUID
    # Events read before stopping (all of them when the chain is intact).
    events: int
    # The first broken link's seq, why, and a sentence saying what is wrong; None when intact.
    broken_seq: int | None = None
    reason: Break | None = None
    detail: str = ""

    @property
    def intact(self) -> bool:
        """Whether every link checked out."""
        return self.broken_seq is None


def chain_verify(*, document_id: uuid.UUID) -> ChainReport:
    """Recompute the document's chain in seq order and report its first broken link.

    Rows and packed segments alike (events.log): a row keeps its whole hash, a packed event
    the hash's first bytes and its segment the whole hash of its last event; each is compared
    with the hash recomputed from the event's fields.
    """
    document = document_field(document_id)
    prev, expected_seq, count = GENESIS, 1, 0
    events = read_log(document_id)
    while True:
        try:
            event = next(events, None)
        except SegmentCorrupt as exc:
            return ChainReport(
                document_id=document_id,
                events=count,
                broken_seq=max(exc.first_seq, expected_seq),
                reason=Break.EDITED,
                detail=f"{exc} (its bytes were changed)",
            )
        if event is None:
            break
        seq = event.seq
        if seq < expected_seq:  # only a seq 0 can sort before 1: never written by the append
            return ChainReport(
                document_id=document_id,
                events=count,
                broken_seq=seq,
                reason=Break.EDITED,
                detail=f"seq {seq} is not a seq the log hands out (renumbered)",
            )
        if seq != expected_seq:
            missing = (
                f"seq {expected_seq} is"
                if seq == expected_seq + 1
                else f"seqs {expected_seq}..{seq - 1} are"
            )
            return ChainReport(
                document_id=document_id,
                events=count,
                broken_seq=expected_seq,
                reason=Break.MISSING,
                detail=f"{missing} missing (deleted); the next event is seq {seq}",
            )
        digest = chain_link(
            prev,
            document,
            seq,
            event.kind,
            event.actor_id,
            event.yjs_client_id,
            time_field(event.created_at),
            event.update,
        )
        # A row's whole hash, or a packed event's first bytes; an empty (NULL) one mismatches.
        stored = event.hash
        if not stored or digest[: len(stored)] != stored or event.root not in (None, digest):
            return ChainReport(
                document_id=document_id,
                events=count,
                broken_seq=seq,
                reason=Break.EDITED,
                detail=(
                    f"hash mismatch at seq {seq}: its content, metadata or hash was changed "
                    "(or the event before it was rewritten along with its hash)"
                ),
            )
        # Chain on our digest (it matched what is stored) so each link is judged on its own.
        prev, expected_seq, count = digest, seq + 1, count + 1
    head = expected_seq - 1
    recorded = Document.objects.filter(pk=document_id).values_list("head_seq", "head_hash").first()
    if recorded is not None and (
        recorded[0] != head or (head and bytes(recorded[1] or b"") != prev)
    ):
        return ChainReport(
            document_id=document_id,
            events=count,
            broken_seq=min(head, recorded[0]) + 1 if recorded[0] != head else head,
            reason=Break.TRUNCATED,
            detail=(
                f"the log ends at seq {head} but its recorded head is seq {recorded[0]}"
                + ("" if recorded[0] != head else " with another hash")
                + ": the newest events were deleted or replaced"
            ),
        )
    snapshots = Snapshot.objects.filter(document_id=document_id)
    snapshot_seq = snapshots.aggregate(upto=Max("upto_seq"))["upto"]
    if snapshot_seq is not None and snapshot_seq > head:
        return ChainReport(
            document_id=document_id,
            events=count,
            broken_seq=head + 1,
            reason=Break.TRUNCATED,
            detail=(
                f"the log ends at seq {head} but a snapshot covers up to seq {snapshot_seq}: "
                "the newest events were deleted"
            ),
        )
    return ChainReport(document_id=document_id, events=count)


def chains_verify(*, document_ids: Sequence[uuid.UUID] | None = None) -> Iterator[ChainReport]:
    """Check the given documents (default: every document), one report each, in order.

    Raises Document.DoesNotExist naming any given id that is no document, before checking.
    """
    if document_ids is None:
        ids = list(Document.objects.order_by("pk").values_list("pk", flat=True))
    else:
        ids = list(dict.fromkeys(document_ids))
        known = set(Document.objects.filter(pk__in=ids).values_list("pk", flat=True))
        unknown = [str(i) for i in ids if i not in known]
        if unknown:
            raise Document.DoesNotExist(f"no such document: {', '.join(unknown)}")
    for document_id in ids:
        yield chain_verify(document_id=document_id)


class ChainBroken(ValueError):
    """The stored chain does not check out on the way to the asked seq."""


def chain_hash_through(*, document_id: uuid.UUID, seq: int) -> bytes:
    """The chain hash after event `seq`: `chain_hash_at`, or the genesis before any event."""
    return GENESIS if seq == 0 else chain_hash_at(document_id=document_id, seq=seq)


def chain_hash_at(*, document_id: uuid.UUID, seq: int) -> bytes:
    """The full chain hash of event `seq`, whether its row or its packed segment holds it.

    A row stores it; a packed event stores only its first bytes, so it is recomputed from the
    segment's start (the chain hash before it: the previous segment's root, or the genesis),
    each link checked against what is stored. ChainBroken if one does not match; LookupError
    if the log has no such seq.
    """
    row = Event.objects.filter(document_id=document_id, seq=seq).values_list("hash", flat=True)
    segment = (
        EventSegment.objects.filter(document_id=document_id, first_seq__lte=seq, last_seq__gte=seq)
        .values_list("first_seq", flat=True)
        .first()
    )
    if segment is None:
        stored = row.first()
        if stored is None:
            raise LookupError(f"the log has no seq {seq}")
        return bytes(stored)
    prev = GENESIS
    if segment > 1:
        before = (
            EventSegment.objects.filter(document_id=document_id, last_seq=segment - 1)
            .values_list("last_hash", flat=True)
            .first()
        )
        if before is None:
            raise ChainBroken(f"no segment ends at seq {segment - 1}, before seq {seq}'s")
        prev = bytes(before)
    document = document_field(document_id)
    for event in read_log(document_id, after=segment - 1, upto=seq):
        prev = chain_link(
            prev,
            document,
            event.seq,
            event.kind,
            event.actor_id,
            event.yjs_client_id,
            time_field(event.created_at),
            event.update,
        )
        if prev[: len(event.hash)] != event.hash or event.root not in (None, prev):
            raise ChainBroken(f"hash mismatch at seq {event.seq}")
    return prev
