"""Packed segments: a run of one document's events, re-encoded in one compressed blob (no Django).

Packing re-encodes storage only. Every event keeps its seq, kind, actor, Yjs client id, time
(to the microsecond), update bytes and chain hash: `unpack` gives back exactly what was
packed. The blob stores columns, each of which compresses well on its own terms (one actor
and one client id over thousands of events, times as small deltas, Yjs updates that repeat
their client id and structure), then the whole is zlib-compressed:

    b"PSEG1"                      format tag
    count                         unsigned 32-bit big-endian
    kinds                         count x unsigned 8-bit (an index into KINDS)
    actors, yjs client ids        count x signed 64-bit big-endian each (-1: None)
    times                         count x signed 64-bit: microseconds since the epoch for the
                                  first event, then the difference from the event before
    update lengths                count x unsigned 32-bit big-endian
    hash prefixes                 count x HASH_PREFIX bytes of each event's chain hash
    updates                       the update bytes, one after another

A segment row keeps the full 32-byte chain hash of its last event (the segment's root: the
whole chain up to there depends on it), and the blob keeps the first HASH_PREFIX bytes of
every event's hash. Verification recomputes each event's hash from its fields: the first
event whose prefix differs is the one that was changed (every later link would need a
sha256 preimage to match again), and the root confirms the whole run.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any, NamedTuple

# Bytes of each event's chain hash kept in the blob: names the changed event; 1 in 4 billion
# for an accidental match, and a deliberate one still breaks every later link.
HASH_PREFIX = 4
KINDS = ("update", "restore")
_TAG = b"PSEG1"
_HEADER = struct.Struct(">5sI")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# Compression level: 9 measured ~3% smaller than 6 on seph-blog1 and is paid once per segment.
_LEVEL = 9


class SegmentCorrupt(ValueError):
    """A segment's blob does not decode: it was changed, cut short or is not a segment."""

    def __init__(self, message: str, first_seq: int = 0) -> None:
        super().__init__(message)
        # The segment's first seq, when the reader knows it.
        self.first_seq = first_seq


class PackedEvent(NamedTuple):
    """One event's fields as a segment keeps them (a tuple: segments unpack a thousand at once)."""

    seq: int
    kind: str
    actor_id: int | None
    yjs_client_id: int | None
    created_at: datetime
    update: bytes
    # The first HASH_PREFIX bytes of the event's chain hash (the full hash when given one).
    hash: bytes


def pack(events: Sequence[PackedEvent]) -> bytes:
    """The compressed blob of consecutive events (their seqs are the segment row's range)."""
    count = len(events)
    micros = [(e.created_at - _EPOCH) // _MICROSECOND for e in events]
    deltas = [micros[0], *(b - a for a, b in pairwise(micros))]
    body = b"".join(
        (
            _HEADER.pack(_TAG, count),
            bytes(KINDS.index(e.kind) for e in events),
            struct.pack(f">{count}q", *(_opt(e.actor_id) for e in events)),
            struct.pack(f">{count}q", *(_opt(e.yjs_client_id) for e in events)),
            struct.pack(f">{count}q", *deltas),
            struct.pack(f">{count}I", *(len(e.update) for e in events)),
            b"".join(e.hash[:HASH_PREFIX] for e in events),
            *(e.update for e in events),
        )
    )
    return zlib.compress(body, _LEVEL)


def unpack(blob: bytes, first_seq: int) -> list[PackedEvent]:
    """The events of a segment whose first event is `first_seq`; SegmentCorrupt if it is bad."""
    body, count, columns, at = _columns(blob)
    kinds, actors, clients, deltas, lengths, prefixes = columns
    out: list[PackedEvent] = []
    micros = 0
    for i in range(count):
        micros += deltas[i]
        out.append(
            PackedEvent(
                first_seq + i,
                kinds[i],
                None if actors[i] < 0 else actors[i],
                None if clients[i] < 0 else clients[i],
                _EPOCH + micros * _MICROSECOND,
                body[at : at + lengths[i]],
                prefixes[i * HASH_PREFIX : (i + 1) * HASH_PREFIX],
            )
        )
        at += lengths[i]
    return out


def unpack_updates(blob: bytes, first_seq: int) -> list[tuple[int, bytes]]:
    """(seq, update) of a segment's events: what a replay needs, without the rest."""
    body, _, columns, at = _columns(blob)
    out: list[tuple[int, bytes]] = []
    for i, length in enumerate(columns[4]):
        out.append((first_seq + i, body[at : at + length]))
        at += length
    return out


def _columns(blob: bytes) -> tuple[bytes, int, tuple[Any, ...], int]:
    """The decompressed body, the count, the columns and where the updates start."""
    try:
        body = zlib.decompress(blob)
        tag, count = _HEADER.unpack_from(body)
        if tag != _TAG:
            raise SegmentCorrupt("not a packed segment (unknown format tag)")
        at = _HEADER.size
        kinds = [KINDS[k] for k in body[at : at + count]]
        at += count
        actors = struct.unpack_from(f">{count}q", body, at)
        at += 8 * count
        clients = struct.unpack_from(f">{count}q", body, at)
        at += 8 * count
        deltas = struct.unpack_from(f">{count}q", body, at)
        at += 8 * count
        lengths = struct.unpack_from(f">{count}I", body, at)
        at += 4 * count
        prefixes = body[at : at + HASH_PREFIX * count]
        at += HASH_PREFIX * count
    except (zlib.error, struct.error, IndexError) as exc:
        raise SegmentCorrupt(f"the segment does not decode: {exc}") from exc
    if at + sum(lengths) != len(body) or len(kinds) != count:
        raise SegmentCorrupt("the segment's updates do not add up to its recorded lengths")
    return body, count, (kinds, actors, clients, deltas, lengths, prefixes), at


def _opt(value: int | None) -> int:
    """An optional id as the blob stores it (ids are positive; -1 is None)."""
    return -1 if value is None else value
