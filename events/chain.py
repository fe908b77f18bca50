"""The event log's hash chain: what each event's `hash` covers, byte for byte (no Django).

    hash(N) = sha256(hash(N-1) || body(N)),  hash(0) = 32 zero bytes (the genesis)

`body(N)` is the concatenation, with no separators, of:

    b"palimpsest.event.v1"                         the version of this encoding (19 bytes)
    document_id                                    the UUID's 16 bytes (`uuid.UUID.bytes`)
    seq                                            unsigned 64-bit big-endian
    len(kind) || kind                              unsigned 32-bit big-endian length, UTF-8
    actor_id                                       optional integer (below)
    yjs_client_id                                  optional integer (below)
    created_at                                     microseconds since 1970-01-01T00:00Z,
                                                   signed 64-bit big-endian
    sha256(update)                                 32 bytes

An optional integer is one byte 0x00 for None, or 0x01 and the value as a signed 64-bit
big-endian integer, so None and 0 differ. `created_at` is an aware datetime, counted in UTC
at microsecond precision, which both SQLite and PostgreSQL store and give back exactly
(`2026-11-22T03:49:00.120000Z` is 1_795_319_340_120_000). Every field has a fixed width or a
length prefix, so no two different events encode alike.

The chain shows an edited or deleted event (its own hash, or the next one's, no longer
matches), but not a cut tail: deleting the newest events leaves a shorter, valid chain.
Only a head hash kept elsewhere (an anchor) would show that.
"""

from __future__ import annotations

import hashlib
import struct
import uuid
from datetime import UTC, datetime, timedelta

GENESIS = bytes(32)
_VERSION = b"palimpsest.event.v1"
_NONE = b"\x00"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_sha256 = hashlib.sha256
_pack_seq = struct.Struct(">Q").pack
_pack_length = struct.Struct(">I").pack
_pack_some = struct.Struct(">Bq").pack
_pack_time = struct.Struct(">q").pack
_KINDS: dict[str, bytes] = {}


def event_hash(
    prev_hash: bytes,
    *,
    document_id: uuid.UUID,
    seq: int,
    kind: str,
    actor_id: int | None,
    yjs_client_id: int | None,
    created_at: datetime,
    update: bytes,
) -> bytes:
    """The 32-byte hash of one event, chained onto the previous event's hash."""
    return chain_link(
        prev_hash,
        document_field(document_id),
        seq,
        kind,
        actor_id,
        yjs_client_id,
        time_field(created_at),
        update,
    )


def chain_link(
    prev_hash: bytes,
    document: bytes,
    seq: int,
    kind: str,
    actor_id: int | None,
    yjs_client_id: int | None,
    time: bytes,
    update: bytes,
) -> bytes:
    """`event_hash` with the document and time fields encoded already, positional.

    For hot loops: a batch of appends shares its time and a few documents, and a keyword
    call plus encoding them again measured ~1.5 us of ~2.6 us per event.
    """
    kind_field = _KINDS.get(kind) or _kind_field(kind)
    return _sha256(
        b"".join(
            (
                prev_hash,
                document,
                _pack_seq(seq),
                kind_field,
                _NONE if actor_id is None else _pack_some(1, actor_id),
                _NONE if yjs_client_id is None else _pack_some(1, yjs_client_id),
                time,
                _sha256(update).digest(),
            )
        )
    ).digest()


def document_field(document_id: uuid.UUID) -> bytes:
    """The version tag and the document's UUID bytes, as `chain_link` takes them."""
    return _VERSION + document_id.bytes


def time_field(created_at: datetime) -> bytes:
    """`created_at` encoded as `chain_link` takes it (see `epoch_micros`)."""
    return _pack_time(epoch_micros(created_at))


def epoch_micros(created_at: datetime) -> int:
    """`created_at` as it is hashed: microseconds since the Unix epoch; a naive time is refused.

    Integer arithmetic on the aware datetime, exact in any zone (no floats, no formatting: an
    ISO string measured ~2 us more per append).
    """
    if created_at.utcoffset() is None:
        raise ValueError(f"a naive datetime has no single meaning: {created_at!r}")
    return (created_at - _EPOCH) // _MICROSECOND


def _kind_field(kind: str) -> bytes:
    """A length-prefixed UTF-8 kind, remembered for the next event (kinds are a handful)."""
    encoded = kind.encode()
    field = _pack_length(len(encoded)) + encoded
    if len(_KINDS) < 16:
        _KINDS[kind] = field
    return field
