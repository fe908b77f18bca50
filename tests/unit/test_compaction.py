"""Folding a log into a snapshot: same document, nothing waiting is dropped, linear work."""

from __future__ import annotations

from typing import Any

from pycrdt import Doc, Text

from collab.sync.compaction import decode_pending, encode_pending, fold, replay_updates


def _recorded(doc: Doc[Any]) -> list[bytes]:
    """A list that receives every update `doc` makes from now on."""
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    return updates


def _text(updates: list[bytes]) -> str:
    """The text of a document rebuilt from updates applied in order."""
    doc: Doc[Any] = Doc()
    for update in updates:
        doc.apply_update(update)
    return str(doc.get("t", type=Text))


def _typed(text: str) -> list[bytes]:
    """One update per character typed."""
    doc: Doc[Any] = Doc()
    updates = _recorded(doc)
    t = doc.get("t", type=Text)
    for ch in text:
        t += ch
    return updates


def test_fold_gives_the_same_document_and_increments_match_a_full_fold() -> None:
    updates = _typed("hello, world")
    full = fold(state=None, pending=[], tail=updates)
    first = fold(state=None, pending=[], tail=updates[:5])
    second = fold(state=first.state, pending=first.pending, tail=updates[5:])
    assert _text([full.state]) == "hello, world"
    assert full.pending == [] and second.pending == []
    assert _text([second.state]) == "hello, world"


def test_an_update_waiting_on_a_missing_one_is_kept_whole_until_it_arrives() -> None:
    updates = _typed("abcdef")
    missing = updates[2]
    folded = fold(state=None, pending=[], tail=updates[:2] + updates[3:])
    # The encoded state alone lost c..f; the snapshot keeps the updates that wait.
    assert _text([folded.state]) == "ab"
    assert folded.pending == updates[3:]
    assert (
        _text(
            [*replay_updates(state=folded.state, pending=encode_pending(folded.pending)), missing]
        )
        == "abcdef"
    )
    # Once the missing update is folded in, nothing waits any more.
    later = fold(state=folded.state, pending=folded.pending, tail=[missing])
    assert later.pending == []
    assert _text([later.state]) == "abcdef"


def test_a_deletion_of_an_item_not_yet_seen_is_kept() -> None:
    alice: Doc[Any] = Doc()
    inserted = _recorded(alice)
    alice.get("t", type=Text).insert(0, "abc")
    bob: Doc[Any] = Doc()
    bob.apply_update(inserted[0])
    deleted = _recorded(bob)
    del bob.get("t", type=Text)[1:2]
    # The log holds Bob's deletion but not Alice's insert (it reaches us later).
    folded = fold(state=None, pending=[], tail=deleted)
    assert folded.pending == deleted
    rebuilt = replay_updates(state=folded.state, pending=encode_pending(folded.pending))
    assert _text([*rebuilt, inserted[0]]) == "ac"
    later = fold(state=folded.state, pending=folded.pending, tail=inserted)
    assert later.pending == []
    assert _text([later.state]) == "ac"


def test_a_resent_update_is_not_kept() -> None:
    updates = _typed("xyz")
    folded = fold(state=None, pending=[], tail=updates + updates)
    assert folded.pending == []


def test_pending_encoding_round_trips() -> None:
    blobs = [b"", b"\x00", bytes(range(256)) * 3]
    assert decode_pending(encode_pending(blobs)) == blobs
    assert decode_pending(b"") == []


def test_a_chain_of_waiting_updates_is_integrated_once_its_root_arrives() -> None:
    doc: Doc[Any] = Doc()
    updates = _recorded(doc)
    text = doc.get("t", type=Text)
    text.insert(0, "abc")
    text.insert(3, "X")
    text.insert(4, "Y")  # waits on X
    text.insert(1, "Z")  # waits on Y (the next clock of the same client)
    folded = fold(state=None, pending=[], tail=[updates[0], updates[2], updates[3]])
    assert folded.pending == [updates[2], updates[3]]
    # yrs alone leaves Y parked when X arrives after both; the fold applies it again.
    later = fold(state=folded.state, pending=folded.pending, tail=[updates[1]])
    assert later.pending == []
    assert _text([later.state]) == "aZbcXY"
