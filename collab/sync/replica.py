"""The server's copy of one document and its collaborators' awareness, over pycrdt."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

from pycrdt import Awareness, Doc, Encoder, TransactionEvent
from pycrdt import get_update as diff_update

from collab.sync.compaction import reapply_waiting
from collab.sync.protocol import (
    EMPTY_UPDATE,
    AwarenessEntry,
    ProtocolError,
    create_awareness_message,
    create_sync_message,
    decode_awareness,
    encode_sync_step2,
)


class Replica:
    """A document's CRDT state plus awareness, as the server holds it for live rooms."""

    def __init__(self) -> None:
        self.doc: Doc[Any] = Doc()
        self.awareness = Awareness(self.doc)
        # pycrdt gives the server a presence of its own; a relay has none to show.
        self.awareness.set_local_state(None)
        self._changed = False
        # Updates applied while a dependency was missing (see `_integrate`).
        self._parked: list[bytes] = []
        self.doc.observe(self._on_transaction)

    def _on_transaction(self, event: TransactionEvent) -> None:
        """Note that the last applied update changed the document."""
        self._changed = True

    def load(self, updates: Iterable[bytes]) -> None:
        """Apply logged updates (a snapshot, events) in order; they were validated on entry."""
        for update in updates:
            self._integrate(update)

    def apply(self, update: bytes) -> bool:
        """Apply a client's update; True if it changed the document or waits on a dependency."""
        if update == EMPTY_UPDATE:
            return False
        try:
            return self._integrate(update)
        except ValueError as exc:
            raise ProtocolError(f"invalid Yjs update: {exc}") from exc

    def _integrate(self, update: bytes) -> bool:
        """Apply an update; True if it changed the document or waits on a dependency.

        yrs may leave earlier parked updates parked when their dependency arrives (two or more
        waiting; pycrdt 0.14.13), which would keep them out of every SyncStep2 we send; so
        after a change, the parked ones are applied again.
        """
        self._changed = False
        self.doc.apply_update(update)
        if self._changed:
            if self._parked:
                self._parked = reapply_waiting(self.doc, self._parked)
            return True
        # Nothing integrated: either a duplicate, or structs parked until a missing dependency
        # arrives. The latter must still be logged, or a replay of the log would lose them.
        if self.covers(update):
            return False
        self._parked.append(update)
        return True

    def covers(self, update: bytes) -> bool:
        """Whether every struct in `update` is already integrated here.

        The part of `update` beyond our state vector keeps its structs only if some were not
        integrated; a v1 update with no structs starts with a zero client count.
        """
        return diff_update(update, self.doc.get_state())[:1] == b"\x00"

    def sync_step1(self) -> bytes:
        """The server's SyncStep1: its state vector, asking the client for what it lacks."""
        return create_sync_message(self.doc)

    def answer_step1(self, state_vector: bytes) -> bytes:
        """A SyncStep2 holding everything the client with `state_vector` lacks."""
        try:
            update = self.doc.get_update(state_vector)
        except ValueError as exc:
            raise ProtocolError("invalid state vector") from exc
        return encode_sync_step2(update)

    def apply_awareness(
        self,
        payload: bytes,
        origin: object,
        may_speak_for: Callable[[int], bool],
        user_name: str | None = None,
    ) -> tuple[list[AwarenessEntry], bytes | None]:
        """Apply the entries a client may speak for; those entries and the update to relay.

        Stock y-websocket clients echo every awareness change they see, other clients' too,
        including removals after their own 30 s timeout; entries for ids another connection
        owns are dropped here so nobody can rename or erase someone else's caret.
        With `user_name`, each state's `user.name` (the name carets and who-is-here lists
        show) is set to it, so nobody can appear under someone else's name.
        """
        entries = decode_awareness(payload)  # strict check first: pycrdt trusts its input
        kept = [entry for entry in entries if may_speak_for(entry.client_id)]
        if not kept:
            return [], None
        named = kept if user_name is None else [_named(entry, user_name) for entry in kept]
        if len(kept) != len(entries) or any(a is not b for a, b in zip(named, kept, strict=True)):
            kept = named
            payload = _encode_awareness(kept)
        self.awareness.apply_awareness_update(payload, origin)
        return kept, payload

    def knows_awareness_of(self, client_id: int) -> bool:
        """Whether some client's awareness state is currently held for this id."""
        return client_id in self.awareness.states

    def awareness_message(self) -> bytes | None:
        """One awareness message with every known state, or None when nobody is there."""
        client_ids = list(self.awareness.states)
        if not client_ids:
            return None
        return create_awareness_message(self.awareness.encode_awareness_update(client_ids))

    def remove_awareness(self, client_ids: Iterable[int], origin: object) -> bytes | None:
        """Forget these clients; the awareness update telling others they left, if any."""
        present = [cid for cid in client_ids if cid in self.awareness.states]
        if not present:
            return None
        self.awareness.remove_awareness_states(present, origin)
        return self.awareness.encode_awareness_update(present)


def _named(entry: AwarenessEntry, user_name: str) -> AwarenessEntry:
    """The entry with `user.name` set to `user_name`; the same object when it already is."""
    state = entry.state
    if state is None:
        return entry
    user = state.get("user")
    if isinstance(user, dict) and user.get("name") == user_name:
        return entry
    user = {**user, "name": user_name} if isinstance(user, dict) else {"name": user_name}
    return AwarenessEntry(entry.client_id, entry.clock, {**state, "user": user})


def _encode_awareness(entries: list[AwarenessEntry]) -> bytes:
    """Re-encode a subset of an awareness update with pycrdt's encoder."""
    encoder = Encoder()
    encoder.write_var_uint(len(entries))
    for entry in entries:
        encoder.write_var_uint(entry.client_id)
        encoder.write_var_uint(entry.clock)
        encoder.write_var_string(json.dumps(entry.state, separators=(",", ":")))
    return encoder.to_bytes()
