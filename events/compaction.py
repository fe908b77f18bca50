"""Compacting the log: snapshots spaced by cost, authorship checkpoints, packed segments.

Nothing here changes an event. A snapshot and an authorship checkpoint are caches of the
document after a seq; packing moves cold events from rows into compressed segments that keep
every field, the update bytes and the hash (events/packing.py), then deletes the rows.
"""

from __future__ import annotations

import time
import uuid
import zlib
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Max
from django.db.models.functions import Length
from django.utils import timezone

from collab.notify import publish
from collab.sync.compaction import decode_pending, encode_pending, fold
from events.authorship import author_checkpoints_fill
from events.log import read_log
from events.models import Event, EventSegment, Snapshot
from events.packing import HASH_PREFIX, PackedEvent, SegmentCorrupt, pack, unpack
from events.selectors import document_head, events_after, snapshot_content

# zlib level for snapshot states: 6 is within 2% of 9 on Yjs states and several times faster.
_STATE_LEVEL = 6


@dataclass(frozen=True, slots=True)
class Compacted:
    """A snapshot written by `snapshot_compact`."""

    document_id: uuid.UUID
    upto_seq: int
    events_folded: int
    pending: int
    state_bytes: int
    duration_ms: int
    # Bytes stored: the compressed state and pending updates.
    stored_bytes: int = 0


def snapshot_compact(*, document_id: uuid.UUID, upto_seq: int | None = None) -> Compacted | None:
    """Fold the events after the newest snapshot (up to `upto_seq`, default the head) into one.

    Idempotent: a snapshot is keyed by (document, upto_seq), and one that exists already, or a
    log with nothing after the newest snapshot, makes this a no-op (None). The log itself is
    only read. The state is stored zlib-compressed.
    """
    started = time.perf_counter()
    head = document_head(document_id=document_id)
    target = head if upto_seq is None else min(upto_seq, head)
    base = (
        Snapshot.objects.filter(document_id=document_id, upto_seq__lte=target)
        .order_by("-upto_seq")
        .values_list("upto_seq", "state", "pending", "compressed")
        .first()
    )
    base_seq = base[0] if base is not None else 0
    if target <= base_seq:
        return None
    state, pending = snapshot_content(*base[1:]) if base is not None else (b"", b"")
    tail = [
        u for _, u in events_after(document_id=document_id, after_seq=base_seq, upto_seq=target)
    ]
    folded = fold(state=state or None, pending=decode_pending(pending), tail=tail)
    stored_state = zlib.compress(folded.state, _STATE_LEVEL)
    raw_pending = encode_pending(folded.pending)
    stored_pending = zlib.compress(raw_pending, _STATE_LEVEL) if raw_pending else b""
    duration_ms = round((time.perf_counter() - started) * 1000)
    try:
        with transaction.atomic():
            Snapshot.objects.create(
                document_id=document_id,
                upto_seq=target,
                state=stored_state,
                pending=stored_pending,
                compressed=True,
                events_folded=len(tail),
                duration_ms=duration_ms,
            )
            publish(
                {
                    "type": "snapshot.compacted",
                    "document": str(document_id),
                    "upto_seq": target,
                    "events_folded": len(tail),
                },
                document_id=document_id,
            )
    except IntegrityError:
        return None  # another worker wrote this very snapshot first
    return Compacted(
        document_id=document_id,
        upto_seq=target,
        events_folded=len(tail),
        pending=len(folded.pending),
        state_bytes=len(folded.state),
        duration_ms=duration_ms,
        stored_bytes=len(stored_state) + len(stored_pending),
    )


def checkpoint_gap(stored_bytes: int) -> int:
    """Events to the next snapshot after one of `stored_bytes`: spaced by cost.

    A snapshot costs its bytes and spares every read after it folding the events before it;
    one every `bytes / PALIMPSEST_CHECKPOINT_BYTES_PER_EVENT` events keeps snapshots at about
    that many bytes per event in all, while reads fold at most
    PALIMPSEST_CHECKPOINT_MAX_EVENTS events (and a small document's are not worth a row).
    """
    gap = stored_bytes // max(1, settings.PALIMPSEST_CHECKPOINT_BYTES_PER_EVENT)
    return max(
        settings.PALIMPSEST_CHECKPOINT_MIN_EVENTS,
        min(settings.PALIMPSEST_CHECKPOINT_MAX_EVENTS, gap),
    )


def checkpoints_fill(*, document_id: uuid.UUID) -> int:
    """Write the snapshots time travel needs, spaced by cost, and drop the ones it does not.

    The plan is walked from seq 0: each planned snapshot decides, by its size, where the next
    one goes (`checkpoint_gap`). Planned snapshots that are missing are written (each folds
    from the one before, so this is linear in the log); any other snapshot is deleted except
    the newest, which rooms load from. Returns how many snapshots were written.
    """
    head = document_head(document_id=document_id)
    sizes = dict(
        Snapshot.objects.filter(document_id=document_id)
        .annotate(size=Length("state"))
        .values_list("upto_seq", "size")
    )
    planned: set[int] = set()
    made = seq = size = 0
    while seq + checkpoint_gap(size) <= head:
        seq += checkpoint_gap(size)
        if seq not in sizes:
            done = snapshot_compact(document_id=document_id, upto_seq=seq)
            made += done is not None
            sizes[seq] = done.stored_bytes if done is not None else _stored_size(document_id, seq)
        size = sizes[seq]
        planned.add(seq)
    if sizes:
        newest = max(sizes)
        unplanned = [s for s in sizes if s not in planned and s != newest]
        Snapshot.objects.filter(document_id=document_id, upto_seq__in=unplanned).delete()
    return made


def _stored_size(document_id: uuid.UUID, seq: int) -> int:
    """The stored size of the snapshot at `seq` (another worker wrote it meanwhile)."""
    return (
        Snapshot.objects.filter(document_id=document_id, upto_seq=seq)
        .annotate(size=Length("state"))
        .values_list("size", flat=True)
        .first()
        or 0
    )


@dataclass(frozen=True, slots=True)
class Packed:
    """What `log_pack` did."""

    segments: int
    events: int
    rows_deleted: int


def log_pack(*, document_id: uuid.UUID, grace_s: float | None = None) -> Packed:
    """Pack the document's cold events into segments and delete rows packed long enough ago.

    Cold: covered by the newest snapshot. Segments hold PALIMPSEST_SEGMENT_EVENTS events
    each, from seq 1 on; each is decoded again and compared with the rows before it is
    written. A segment's rows are deleted only once it is `grace_s` old (default
    PALIMPSEST_PACK_GRACE_SECONDS), so a reader that looked for segments just before it was
    written still finds the rows. A gap in the log stops packing there (verify_log names it).
    """
    size = settings.PALIMPSEST_SEGMENT_EVENTS
    grace = settings.PALIMPSEST_PACK_GRACE_SECONDS if grace_s is None else grace_s
    cold = Snapshot.objects.filter(document_id=document_id).aggregate(m=Max("upto_seq"))["m"] or 0
    segments = EventSegment.objects.filter(document_id=document_id)
    packed_to = segments.aggregate(m=Max("last_seq"))["m"] or 0
    made = 0
    while packed_to + size <= cold:
        events = [
            PackedEvent(e.seq, e.kind, e.actor_id, e.yjs_client_id, e.created_at, e.update, e.hash)
            for e in read_log(document_id, after=packed_to, upto=packed_to + size)
        ]
        if [e.seq for e in events] != list(range(packed_to + 1, packed_to + size + 1)):
            break
        data = pack(events)
        if unpack(data, packed_to + 1) != [e._replace(hash=e.hash[:HASH_PREFIX]) for e in events]:
            raise SegmentCorrupt(f"segment from seq {packed_to + 1} does not read back the same")
        try:
            with transaction.atomic():
                EventSegment.objects.create(
                    document_id=document_id,
                    first_seq=packed_to + 1,
                    last_seq=packed_to + size,
                    data=data,
                    last_hash=events[-1].hash,
                )
        except IntegrityError:
            break  # another worker packs this document
        packed_to += size
        made += 1
    cutoff = timezone.now() - timedelta(seconds=grace)
    covered = segments.filter(created_at__lte=cutoff).aggregate(m=Max("last_seq"))["m"] or 0
    deleted = 0
    if covered:
        deleted, _ = Event.objects.filter(document_id=document_id, seq__lte=covered).delete()
    return Packed(segments=made, events=made * size, rows_deleted=deleted)


@dataclass(frozen=True, slots=True)
class CompactionDone:
    """What one compaction of a document did."""

    snapshot: Compacted | None
    checkpoints: int
    author_checkpoints: int
    packed: Packed


def document_compact(
    *, document_id: uuid.UUID, grace_s: float | None = None, history: bool = True
) -> CompactionDone:
    """Everything compaction does for one document, in order.

    Planned snapshots first (reads of the past stay bounded however the log was written), a
    snapshot at the head (rooms load from it), then, with `history`, authorship checkpoints
    and packing (what the newest snapshot covers is cold). `grace_s` as `log_pack` takes it.
    """
    checkpoints = checkpoints_fill(document_id=document_id)
    done = snapshot_compact(document_id=document_id)
    if not history:
        return CompactionDone(done, checkpoints, 0, Packed(0, 0, 0))
    return CompactionDone(
        done, checkpoints, *history_compact(document_id=document_id, grace_s=grace_s)
    )


def history_compact(*, document_id: uuid.UUID, grace_s: float | None = None) -> tuple[int, Packed]:
    """Authorship checkpoints up to the head, then packing; how many checkpoints, and what
    was packed.

    The costly part of compaction (a replay event by event, ~0.1 ms each on a long
    document): run by the beat sweep, not after every 1,000 events a room writes, so it does
    not compete with a burst of editing for the CPU.
    """
    authors = author_checkpoints_fill(
        document_id=document_id, upto=document_head(document_id=document_id)
    )
    return authors, log_pack(document_id=document_id, grace_s=grace_s)
