"""Strict decoding of y-websocket frames; encoding goes through pycrdt's own helpers."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from pycrdt import (
    YMessageType,
    YSyncMessageType,
    create_awareness_message,
    create_sync_message,
    create_update_message,
    merge_updates,
    write_message,
    write_var_uint,
)

__all__ = [
    "EMPTY_UPDATE",
    "AwarenessEntry",
    "Frame",
    "FrameKind",
    "ProtocolError",
    "create_awareness_message",
    "create_sync_message",
    "create_update_message",
    "decode_awareness",
    "decode_state_vector",
    "encode_permission_denied",
    "encode_sync_step2",
    "merge_awareness_updates",
    "parse_frame",
    "update_message_of",
]

# lib0's encoding of an update that carries no structs and no deletions.
EMPTY_UPDATE = b"\x00\x00"
# y-protocols' auth message: type 2, then 0 = permission denied, then a reason string.
_AUTH = 2
_AUTH_PERMISSION_DENIED = 0
_QUERY_AWARENESS = 3
# A lib0 varUint longer than this cannot be a length or id we accept (2**63).
_MAX_VARUINT_BYTES = 9


class ProtocolError(ValueError):
    """A frame that does not follow the y-websocket protocol."""


class FrameKind(IntEnum):
    """The messages a client may send."""

    SYNC_STEP1 = 1
    SYNC_STEP2 = 2
    SYNC_UPDATE = 3
    AWARENESS = 4
    QUERY_AWARENESS = 5


@dataclass(frozen=True, slots=True)
class Frame:
    """One decoded client frame: what it is and its payload."""

    kind: FrameKind
    payload: bytes


@dataclass(frozen=True, slots=True)
class AwarenessEntry:
    """One client's awareness state inside an awareness update (state None = gone)."""

    client_id: int
    clock: int
    state: dict[str, object] | None


class _Reader:
    """Bounds-checked lib0 reading; pycrdt's Decoder trusts its input, so it is not used here."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def var_uint(self) -> int:
        """Read one lib0 varUint."""
        value = shift = 0
        for _ in range(_MAX_VARUINT_BYTES):
            if self._pos >= len(self._data):
                raise ProtocolError("truncated frame: expected a number")
            byte = self._data[self._pos]
            self._pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7
        raise ProtocolError("malformed number")

    def var_bytes(self) -> bytes:
        """Read one length-prefixed byte string."""
        length = self.var_uint()
        end = self._pos + length
        if end > len(self._data):
            raise ProtocolError("truncated frame: payload shorter than its length")
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def var_string(self) -> str:
        """Read one length-prefixed UTF-8 string."""
        try:
            return self.var_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError("string is not UTF-8") from exc

    def rest(self) -> bytes:
        """Everything not read yet."""
        return self._data[self._pos :]

    def end(self) -> None:
        """Require that nothing follows the message."""
        if self._pos != len(self._data):
            raise ProtocolError("trailing bytes after message")


_SYNC_KINDS = {
    YSyncMessageType.SYNC_STEP1: FrameKind.SYNC_STEP1,
    YSyncMessageType.SYNC_STEP2: FrameKind.SYNC_STEP2,
    YSyncMessageType.SYNC_UPDATE: FrameKind.SYNC_UPDATE,
}


def parse_frame(data: bytes) -> Frame:
    """Decode one binary frame a client sent, or raise ProtocolError."""
    reader = _Reader(data)
    message_type = reader.var_uint()
    if message_type == YMessageType.SYNC:
        sync_type = reader.var_uint()
        kind = _SYNC_KINDS.get(sync_type)  # type: ignore[call-overload]
        if kind is None:
            raise ProtocolError(f"unknown sync message type {sync_type}")
        payload = reader.var_bytes()
    elif message_type == YMessageType.AWARENESS:
        kind, payload = FrameKind.AWARENESS, reader.var_bytes()
    elif message_type == _QUERY_AWARENESS:
        kind, payload = FrameKind.QUERY_AWARENESS, b""
    else:
        raise ProtocolError(f"unknown message type {message_type}")
    reader.end()
    return Frame(kind, payload)


def decode_awareness(payload: bytes, max_state_bytes: int | None = None) -> list[AwarenessEntry]:
    """Decode an awareness update strictly: ids, clocks and JSON object states (of a bounded
    size, with `max_state_bytes`)."""
    reader = _Reader(payload)
    count = reader.var_uint()
    if count > len(payload):
        raise ProtocolError("awareness entry count exceeds payload")
    entries = []
    for _ in range(count):
        client_id = reader.var_uint()
        clock = reader.var_uint()
        raw = reader.var_string()
        if max_state_bytes is not None and len(raw) > max_state_bytes:
            raise ProtocolError(f"awareness state over {max_state_bytes} bytes")
        try:
            state = json.loads(raw) if raw else None
        except ValueError as exc:
            raise ProtocolError("awareness state is not JSON") from exc
        if state is not None and not isinstance(state, dict):
            raise ProtocolError("awareness state must be a JSON object or null")
        entries.append(AwarenessEntry(client_id, clock, state))
    reader.end()
    return entries


def merge_awareness_updates(payloads: Sequence[bytes]) -> bytes:
    """One awareness update carrying the entries of `payloads` (already checked), in order.

    Receivers apply entries one at a time and keep the newest clock per client, so the
    concatenation means exactly what the updates mean applied one after another.
    """
    if len(payloads) == 1:
        return payloads[0]
    count = 0
    bodies = []
    for payload in payloads:
        reader = _Reader(payload)
        count += reader.var_uint()
        bodies.append(reader.rest())
    return write_var_uint(count) + b"".join(bodies)


def update_message_of(updates: Sequence[bytes]) -> bytes:
    """One SyncUpdate frame carrying `updates` merged (Yjs's mergeUpdates): a receiver
    integrates it as it would each of them, and spends one message and one transaction."""
    return create_update_message(updates[0] if len(updates) == 1 else merge_updates(*updates))


def encode_sync_step2(update: bytes) -> bytes:
    """Encode a SyncStep2 reply carrying `update`."""
    return bytes([YMessageType.SYNC, YSyncMessageType.SYNC_STEP2]) + write_message(update)


def encode_permission_denied(reason: str) -> bytes:
    """Encode y-protocols' auth message telling the client it may not do that."""
    return (
        write_var_uint(_AUTH)
        + write_var_uint(_AUTH_PERMISSION_DENIED)
        + write_message(reason.encode("utf-8"))
    )


def encode_state_vector(vector: dict[int, int]) -> bytes:
    """Encode a Yjs state vector (the inverse of `decode_state_vector`)."""
    return write_var_uint(len(vector)) + b"".join(
        write_var_uint(client) + write_var_uint(clock) for client, clock in vector.items()
    )


def update_groups(update: bytes) -> tuple[int, int | None]:
    """How many per-client groups of structs a v1 update holds, and the first one's client."""
    reader = _Reader(update)
    groups = reader.var_uint()
    if not groups:
        return 0, None
    reader.var_uint()  # the group's struct count
    return groups, reader.var_uint()


def decode_state_vector(data: bytes) -> dict[int, int]:
    """Decode a Yjs state vector: client id → next expected clock."""
    reader = _Reader(data)
    count = reader.var_uint()
    if count > len(data):
        raise ProtocolError("state vector count exceeds its length")
    vector = {}
    for _ in range(count):
        client = reader.var_uint()
        vector[client] = reader.var_uint()
    reader.end()
    return vector
