"""The server replica: what counts as a change, pending updates, sync replies, awareness."""

from __future__ import annotations

from typing import Any

import pytest
from pycrdt import Awareness, Doc, Text

from collab.sync.colors import PALETTE, author_color
from collab.sync.protocol import FrameKind, ProtocolError, decode_awareness, parse_frame
from collab.sync.replica import Replica


def _text(doc: Doc) -> Text:
    return doc.get("text", type=Text)


def test_new_update_changes_duplicate_does_not() -> None:
    client = Doc()
    _text(client).insert(0, "hello")
    replica = Replica()
    assert replica.apply(client.get_update()) is True
    assert replica.apply(client.get_update()) is False
    assert replica.apply(b"\x00\x00") is False


def test_update_waiting_on_a_dependency_counts_as_a_change() -> None:
    client = Doc()
    text = _text(client)
    text.insert(0, "a")
    first = client.get_update()
    state = client.get_state()
    text.insert(1, "b")
    second = client.get_update(state)
    replica = Replica()
    # Arrives before its dependency: nothing integrates, but it must still be logged.
    assert replica.apply(second) is True
    assert replica.apply(first) is True
    assert str(_text(replica.doc)) == "ab"


def test_deletion_is_a_change() -> None:
    client = Doc()
    text = _text(client)
    text.insert(0, "abc")
    replica = Replica()
    replica.apply(client.get_update())
    state = client.get_state()
    del text[0:1]
    assert replica.apply(client.get_update(state)) is True
    assert str(_text(replica.doc)) == "bc"


def test_answer_step1_gives_what_the_client_lacks() -> None:
    writer = Doc()
    _text(writer).insert(0, "shared")
    replica = Replica()
    replica.apply(writer.get_update())
    reader = Doc()
    reply = parse_frame(replica.answer_step1(reader.get_state()))
    assert reply.kind is FrameKind.SYNC_STEP2
    reader.apply_update(reply.payload)
    assert str(_text(reader)) == "shared"


def test_load_replays_in_order() -> None:
    client = Doc()
    text = _text(client)
    updates = []
    for word in ["one ", "two ", "three"]:
        state = client.get_state()
        text.insert(len(text), word)
        updates.append(client.get_update(state))
    replica = Replica()
    replica.load(updates)
    assert str(_text(replica.doc)) == "one two three"


def test_awareness_add_list_and_remove() -> None:
    doc = Doc()
    awareness = Awareness(doc)
    awareness.set_local_state({"user": {"name": "ada"}})
    replica = Replica()
    entries, relay = replica.apply_awareness(
        awareness.encode_awareness_update([doc.client_id]), "conn", lambda cid: True
    )
    assert [e.client_id for e in entries] == [doc.client_id]
    assert relay is not None
    listing = replica.awareness_message()
    assert listing is not None
    assert decode_awareness(parse_frame(listing).payload)[0].state == {"user": {"name": "ada"}}
    removal = replica.remove_awareness([doc.client_id], "conn")
    assert removal is not None
    assert decode_awareness(removal)[0].state is None
    assert replica.awareness_message() is None


def test_awareness_entries_a_client_may_not_speak_for_are_dropped() -> None:
    ours, theirs = Doc(), Doc()
    mixed = Awareness(ours)
    mixed.set_local_state({"user": {"name": "me"}})
    other = Awareness(theirs)
    other.set_local_state({"user": {"name": "impostor"}})
    # One update speaking for two clients, as a stock client's echo does.
    mixed.apply_awareness_update(other.encode_awareness_update([theirs.client_id]), "echo")
    payload = mixed.encode_awareness_update([ours.client_id, theirs.client_id])
    replica = Replica()
    entries, relay = replica.apply_awareness(payload, "conn", lambda cid: cid == ours.client_id)
    assert [e.client_id for e in entries] == [ours.client_id]
    assert relay is not None
    relayed = decode_awareness(relay)
    assert [e.client_id for e in relayed] == [ours.client_id]
    assert not replica.knows_awareness_of(theirs.client_id)
    assert replica.apply_awareness(payload, "conn", lambda cid: False) == ([], None)


def test_updates_parked_on_a_missing_one_are_served_once_it_arrives() -> None:
    from pycrdt import Doc, Text

    source: Doc = Doc()
    updates: list[bytes] = []
    source.observe(lambda event: updates.append(event.update))
    text = source.get("text", type=Text)
    text.insert(0, "abc")
    text.insert(3, "X")  # the update that arrives late
    text.insert(4, "Y")  # right after X: waits on it
    text.insert(1, "Z")  # elsewhere, but the next clock: waits on Y
    order = (0, 2, 3, 1)
    # yrs alone loses Y here: this is what the replica works around.
    plain: Doc = Doc()
    for index in order:
        plain.apply_update(updates[index])
    assert str(plain.get("text", type=Text)) == "aZbcX"

    replica = Replica()
    for index in order:
        assert replica.apply(updates[index]) is True
    newcomer: Doc = Doc()
    newcomer.apply_update(replica.doc.get_update())
    assert str(newcomer.get("text", type=Text)) == "aZbcXY"
    # The same from the log.
    replayed = Replica()
    replayed.load([updates[i] for i in order])
    assert str(replayed.doc.get("text", type=Text)) == "aZbcXY"


def test_awareness_names_and_colours_are_the_server_s_not_the_client_s() -> None:
    doc = Doc()
    awareness = Awareness(doc)
    honest_user = {"name": "alice", "color": author_color("alice")}
    awareness.set_local_state({"user": honest_user, "cursor": None})
    replica = Replica()
    honest = awareness.encode_awareness_update([doc.client_id])
    entries, relay = replica.apply_awareness(honest, "conn", lambda cid: True, user_name="alice")
    assert relay == honest  # a truthful state is relayed as it came, without re-encoding

    awareness.set_local_state({"user": {"name": "the admin", "color": "#123456"}})
    entries, relay = replica.apply_awareness(
        awareness.encode_awareness_update([doc.client_id]), "conn", lambda cid: True, "mallory"
    )
    assert relay is not None
    # The name and the colour are the server's: nobody passes for someone else in carets.
    mallory = {"name": "mallory", "color": author_color("mallory")}
    assert mallory["color"] != "#123456"
    assert decode_awareness(relay)[0].state == {"user": mallory}
    assert entries[0].state == {"user": mallory}
    listing = replica.awareness_message()
    assert listing is not None
    assert decode_awareness(parse_frame(listing).payload)[0].state["user"]["name"] == "mallory"

    awareness.set_local_state({"user": "not an object"})
    _, relay = replica.apply_awareness(
        awareness.encode_awareness_update([doc.client_id]), "conn", lambda cid: True, "mallory"
    )
    assert relay is not None
    assert decode_awareness(relay)[0].state == {"user": mallory}


def test_parked_updates_are_retried_only_when_a_gap_they_wait_on_fills(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import collab.sync.replica as replica_module

    retries: list[int] = []
    real = replica_module.reapply_waiting

    def counting(doc: Any, updates: Any) -> list[bytes]:
        retries.append(len(updates))
        return real(doc, updates)

    monkeypatch.setattr(replica_module, "reapply_waiting", counting)
    late: Doc = Doc(client_id=7)
    late_updates: list[bytes] = []
    late.observe(lambda event: late_updates.append(event.update))
    late_text = late.get("text", type=Text)
    for i in range(3):
        late_text.insert(i, "xyz"[i])
    replica = Replica()
    for update in late_updates[1:]:
        assert replica.apply(update) is True  # both wait on the first
    assert replica.parked == 2
    # Someone else types away: every keystroke changes the document, none fills the gap.
    other: Doc = Doc(client_id=8)
    other_updates: list[bytes] = []
    other.observe(lambda event: other_updates.append(event.update))
    for i in range(50):
        other.get("other", type=Text).insert(i, "k")
    for update in other_updates:
        assert replica.apply(update) is True
    assert retries == [], "parked updates were re-applied before their dependency came"
    assert replica.apply(late_updates[0]) is True
    assert retries, "the missing update came: the parked ones were re-applied"
    assert replica.parked == 0
    assert str(replica.doc.get("text", type=Text)) == "xyz"


def test_clocks_behind_counts_what_a_client_lacks_and_checks_the_vector() -> None:
    replica = Replica()
    writer: Doc = Doc()
    writer.get("text", type=Text).insert(0, "hello")
    replica.apply(writer.get_update())
    assert replica.clocks_behind(Doc().get_state()) == 5
    assert replica.clocks_behind(writer.get_state()) == 0
    with pytest.raises(ProtocolError):
        replica.clocks_behind(b"\x05\x01")


def test_colours_are_stable_from_the_palette_and_match_the_browser_s_hash() -> None:
    assert author_color("alice") == author_color("alice") in PALETTE
    assert author_color("ünïcødé") in PALETTE and author_color(None) not in PALETTE
    assert len({author_color(name) for name in "abcdefgh"}) > 3
    # FNV-1a over UTF-16 code units, as the colours shown so far were computed in the browser.
    assert author_color("alice") == PALETTE[0x872213E7 % len(PALETTE)]  # the old colors.js, in node
