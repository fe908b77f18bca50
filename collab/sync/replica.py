"""The server's copy of one document and its collaborators' awareness, over pycrdt."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pycrdt import Awareness, Decoder, Doc, Encoder, TransactionEvent
from pycrdt import get_update as diff_update

from collab.sync.colors import author_color
from collab.sync.compaction import reapply_waiting
from collab.sync.protocol import (
    EMPTY_UPDATE,
    AwarenessEntry,
    ProtocolError,
    create_awareness_message,
    create_sync_message,
    decode_awareness,
    decode_state_vector,
    encode_sync_step2,
)


class ReplicaTainted(ProtocolError):
    """The update was refused after yrs had taken part of it: rebuild the replica from the log."""


def is_yrs_panic(exc: BaseException) -> bool:
    """Whether `exc` is pyo3's `PanicException`, which yrs raises on inputs it cannot handle.

    pyo3 creates that class at run time in a module nobody can import (`pyo3_runtime`), so it
    is recognised by name. It derives from BaseException; catching that broadly would also
    swallow cancellation, so callers catch BaseException, ask this, and re-raise the rest.
    """
    kind = type(exc)
    return kind.__name__ == "PanicException" and kind.__module__ == "pyo3_runtime"


@dataclass(frozen=True, slots=True)
class ParkedLimits:
    """How many client updates, and how many bytes of them, may wait on a missing dependency."""

    max_updates: int = 1_000_000
    max_bytes: int = 1 << 40


@dataclass(frozen=True, slots=True)
class _Parked:
    """An update yrs could not integrate whole, and the first thing it waits for."""

    update: bytes
    # A gap in its own client's clocks: it can integrate once the document has `client`'s
    # clock `clock`. None when it waits on another item (an origin), which yrs itself retries.
    gap: tuple[int, int] | None


class Replica:
    """A document's CRDT state plus awareness, as the server holds it for live rooms."""

    def __init__(self, parked_limits: ParkedLimits | None = None) -> None:
        self.doc: Doc[Any] = Doc()
        self.awareness = Awareness(self.doc)
        # pycrdt gives the server a presence of its own; a relay has none to show.
        self.awareness.set_local_state(None)
        self._changed = False
        self.parked_limits = parked_limits or ParkedLimits()
        # Updates applied while a dependency was missing (see `_integrate`).
        self._parked: list[_Parked] = []
        self.parked_bytes = 0
        self._subscription = self.doc.observe(self._on_transaction)

    def _on_transaction(self, event: TransactionEvent) -> None:
        """Note that the last applied update changed the document."""
        self._changed = True

    @property
    def parked(self) -> int:
        """How many updates wait on a missing dependency."""
        return len(self._parked)

    def load(self, updates: Iterable[bytes]) -> None:
        """Apply logged updates (a snapshot, events) in order; they were validated on entry."""
        for update in updates:
            self._integrate(update, bounded=False)

    def reset(self, updates: Iterable[bytes]) -> None:
        """Start again from logged updates, keeping awareness (which holds no document state)."""
        self.doc.unobserve(self._subscription)
        self.doc = Doc()
        self._subscription = self.doc.observe(self._on_transaction)
        self._parked = []
        self.parked_bytes = 0
        self.load(updates)

    def apply(self, update: bytes) -> bool:
        """Apply a client's update; True if it changed the document or waits on a dependency.

        Raises ProtocolError for an update yrs rejects, and ReplicaTainted (after which the
        replica must be rebuilt from the log) when yrs panicked part-way or the update would
        take the parked updates over their bound.
        """
        if update == EMPTY_UPDATE:
            return False
        return self._integrate(update, bounded=True)

    def _integrate(self, update: bytes, *, bounded: bool) -> bool:
        """Apply an update; True if it changed the document or waits on a dependency.

        yrs may leave earlier parked updates parked when their dependency arrives (two or more
        waiting; pycrdt 0.14.13), which would keep them out of every SyncStep2 we send; so
        once a change fills the gap one of them waits on, the parked ones are applied again.
        """
        self._changed = False
        try:
            self.doc.apply_update(update)
        except ValueError as exc:  # it did not decode: nothing was applied
            raise ProtocolError(f"invalid Yjs update: {exc}") from exc
        except RuntimeError as exc:
            # Refused while integrating (e.g. "block parent must be deleted or shared ref
            # type"): some of it may be in the document already.
            raise ReplicaTainted(f"invalid Yjs update: {exc}") from exc
        except BaseException as exc:
            if not is_yrs_panic(exc):
                raise
            raise ReplicaTainted("invalid Yjs update: the CRDT library failed on it") from None
        changed = self._changed
        if changed and self._parked:
            self._retry_parked()
        # Nothing integrated: a duplicate, or structs parked until a missing dependency arrives;
        # part integrated: the rest is parked. Parked structs must still be logged, or a replay
        # of the log would lose them.
        if self.covers(update):
            return changed
        if bounded and (
            len(self._parked) + 1 > self.parked_limits.max_updates
            or self.parked_bytes + len(update) > self.parked_limits.max_bytes
        ):
            # yrs holds its parked structs already; only a rebuild forgets them.
            raise ReplicaTainted("too many updates waiting on missing ones")
        self._park(update)
        return True

    def _park(self, update: bytes) -> None:
        """Keep an update that waits, with the gap (if any) that must fill before a retry."""
        vector = self.doc.get_state()
        clocks = decode_state_vector(vector)
        decoder = Decoder(diff_update(update, vector))
        gap = None
        if decoder.read_var_uint():  # groups of structs beyond our state: read the first one's
            decoder.read_var_uint()
            client, clock = decoder.read_var_uint(), decoder.read_var_uint()
            if clock > clocks.get(client, 0):
                gap = (client, clock)
        self._parked.append(_Parked(update, gap))
        self.parked_bytes += len(update)

    def _retry_parked(self) -> None:
        """Apply the parked updates again if a gap one of them waits on is now filled.

        Costs one state-vector read per change while updates are parked, and nothing more
        until a missing dependency arrives.
        """
        clocks = decode_state_vector(self.doc.get_state())
        if not any(p.gap and clocks.get(p.gap[0], 0) >= p.gap[1] for p in self._parked):
            return
        waiting = reapply_waiting(self.doc, [p.update for p in self._parked])
        self._parked = []
        self.parked_bytes = 0
        for update in waiting:
            self._park(update)

    def clocks_behind(self, state_vector: bytes) -> int:
        """How many of our clocks (items, roughly characters) a client with this vector lacks."""
        theirs = decode_state_vector(state_vector)
        ours = decode_state_vector(self.doc.get_state())
        return sum(max(0, clock - theirs.get(client, 0)) for client, clock in ours.items())

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
        except BaseException as exc:
            if not is_yrs_panic(exc):
                raise
            raise ProtocolError("invalid state vector") from None  # a read: nothing changed
        return encode_sync_step2(update)

    def apply_awareness(
        self,
        payload: bytes,
        origin: object,
        may_speak_for: Callable[[int], bool],
        user_name: str | None = None,
        decoded: list[AwarenessEntry] | None = None,
    ) -> tuple[list[AwarenessEntry], bytes | None]:
        """Apply the entries a client may speak for; those entries and the update to relay.

        Stock y-websocket clients echo every awareness change they see, other clients' too,
        including removals after their own 30 s timeout; entries for ids another connection
        owns are dropped here so nobody can rename or erase someone else's caret.
        With `user_name`, each state's `user.name` (the name carets and who-is-here lists
        show) is set to it, so nobody can appear under someone else's name.
        `decoded`: the caller's `decode_awareness(payload)`, so it is not decoded twice.
        """
        # Strict check first: pycrdt trusts its input.
        entries = decode_awareness(payload) if decoded is None else decoded
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
    """The entry with `user.name` and `user.color` the server's for `user_name`; the same
    object when they already are."""
    state = entry.state
    if state is None:
        return entry
    ours = {"name": user_name, "color": author_color(user_name)}
    user = state.get("user")
    if isinstance(user, dict) and all(user.get(k) == v for k, v in ours.items()):
        return entry
    user = {**user, **ours} if isinstance(user, dict) else ours
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
