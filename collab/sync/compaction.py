"""Folding a document's log into a snapshot: a state plus the updates still waiting."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from pycrdt import Decoder, Doc, write_var_uint
from pycrdt import get_update as diff_update

from collab.sync.protocol import decode_state_vector


@dataclass(frozen=True, slots=True)
class Folded:
    """A snapshot's content: the encoded state and the raw updates it could not integrate."""

    state: bytes
    pending: list[bytes]


def fold(*, state: bytes | None, pending: Sequence[bytes], tail: Iterable[bytes]) -> Folded:
    """Apply a snapshot and the events after it; the new state and what still waits.

    Costs one apply per tail update plus one encode of the document: linear in the tail,
    unlike `merge_updates` over the raw log. `Doc.get_update()` leaves out structs and
    deletions parked on a missing dependency, so every update that is not fully reflected
    in the new state is kept whole; re-applying one that partly integrated is a no-op.
    """
    doc: Doc[Any] = Doc()
    if state:
        doc.apply_update(state)
    candidates = list(pending)
    for update in candidates:
        doc.apply_update(update)
    for update in tail:
        doc.apply_update(update)
        candidates.append(update)
    waiting = reapply_waiting(doc, candidates)
    return Folded(state=doc.get_update(), pending=waiting)


def reapply_waiting(doc: Doc[Any], updates: Sequence[bytes]) -> list[bytes]:
    """Apply again the updates `doc` has not fully integrated; those that still wait.

    yrs (pycrdt 0.14.13) can leave parked updates parked after their dependency arrives when
    two or more were waiting; applying them again integrates them. Repeated while that makes
    progress.
    """
    vector = doc.get_state()
    waiting = waiting_updates(updates, vector)
    while waiting:
        for update in waiting:
            doc.apply_update(update)
        before, vector = vector, doc.get_state()
        if vector == before:
            break
        waiting = waiting_updates(waiting, vector)
    return waiting


def waiting_updates(updates: Sequence[bytes], vector: bytes) -> list[bytes]:
    """The updates some part of which the document with `vector` has not integrated."""
    clocks = decode_state_vector(vector)
    return [u for u in updates if _still_waiting(u, vector, clocks)]


def replay_updates(*, state: bytes | None, pending: bytes) -> list[bytes]:
    """The updates that rebuild a snapshot, in the order they must be applied."""
    return ([state] if state else []) + decode_pending(pending)


def encode_pending(updates: Sequence[bytes]) -> bytes:
    """Updates as lib0 length-prefixed byte arrays, one after another."""
    return b"".join(write_var_uint(len(u)) + u for u in updates)


def decode_pending(blob: bytes) -> list[bytes]:
    """The inverse of `encode_pending`."""
    return list(Decoder(bytes(blob)).read_messages()) if blob else []


def _still_waiting(update: bytes, vector: bytes, clocks: dict[int, int]) -> bool:
    """Whether some struct or deletion of `update` is not part of the document's state."""
    # The diff keeps the structs beyond the state vector, and always the full delete set.
    diff = diff_update(update, vector)
    if diff[:1] != b"\x00":
        return True
    if diff == b"\x00\x00":
        return False
    # A deletion of an item the document does not have yet is parked; Yjs can only know the
    # item exists if its clock is below the state vector's clock for its client.
    decoder = Decoder(diff[1:])
    for _ in range(decoder.read_var_uint()):
        client = decoder.read_var_uint()
        for _ in range(decoder.read_var_uint()):
            clock = decoder.read_var_uint()
            length = decoder.read_var_uint()
            if clock + length > clocks.get(client, 0):
                return True
    return False
