"""The wire protocol: strict decoding, pycrdt encoding, and bad frames."""

from __future__ import annotations

import pytest
from pycrdt import Awareness, Doc, Text, write_message

from collab.sync.protocol import (
    FrameKind,
    ProtocolError,
    create_awareness_message,
    create_sync_message,
    create_update_message,
    decode_awareness,
    decode_state_vector,
    encode_permission_denied,
    encode_sync_step2,
    merge_awareness_updates,
    parse_frame,
)
from tests.ytest import bad_frames, sample_update


def test_sync_step1_round_trip() -> None:
    doc = Doc()
    doc.get("text", type=Text).insert(0, "abc")
    frame = parse_frame(create_sync_message(doc))
    assert frame.kind is FrameKind.SYNC_STEP1
    assert decode_state_vector(frame.payload) == {doc.client_id: 3}


def test_update_and_step2_carry_the_update() -> None:
    update = sample_update("xyz")
    assert parse_frame(create_update_message(update)).payload == update
    step2 = parse_frame(encode_sync_step2(update))
    assert step2.kind is FrameKind.SYNC_STEP2
    assert step2.payload == update


def test_awareness_and_query() -> None:
    doc = Doc()
    awareness = Awareness(doc)
    awareness.set_local_state({"user": {"name": "ada"}})
    frame = parse_frame(
        create_awareness_message(awareness.encode_awareness_update([doc.client_id]))
    )
    assert frame.kind is FrameKind.AWARENESS
    (entry,) = decode_awareness(frame.payload)
    assert entry.client_id == doc.client_id
    assert entry.state == {"user": {"name": "ada"}}
    assert parse_frame(b"\x03").kind is FrameKind.QUERY_AWARENESS


def test_awareness_removal_has_null_state() -> None:
    payload = b"\x01\x05\x02" + write_message(b"null")
    assert decode_awareness(payload)[0].state is None


def test_merged_awareness_updates_mean_the_updates_applied_in_turn() -> None:
    ada_doc, bob_doc = Doc(), Doc()
    ada, bob = Awareness(ada_doc), Awareness(bob_doc)
    ada.set_local_state({"user": {"name": "ada"}})
    bob.set_local_state({"user": {"name": "bob"}})
    first = ada.encode_awareness_update([ada_doc.client_id])
    ada.set_local_state({"user": {"name": "ada"}, "cursor": 3})
    updates = [
        first,
        bob.encode_awareness_update([bob_doc.client_id]),
        ada.encode_awareness_update([ada_doc.client_id]),
    ]
    merged = merge_awareness_updates(updates)
    assert [(e.client_id, e.state) for e in decode_awareness(merged)] == [
        (ada_doc.client_id, {"user": {"name": "ada"}}),
        (bob_doc.client_id, {"user": {"name": "bob"}}),
        (ada_doc.client_id, {"user": {"name": "ada"}, "cursor": 3}),
    ]
    # A receiver ends where it would after the three updates: the newest clock wins.
    receiver = Awareness(Doc())
    receiver.apply_awareness_update(merged, "relay")
    assert receiver.states[ada_doc.client_id] == {"user": {"name": "ada"}, "cursor": 3}
    assert receiver.states[bob_doc.client_id] == {"user": {"name": "bob"}}
    assert merge_awareness_updates(updates[:1]) == first


def test_permission_denied_is_y_protocols_auth_message() -> None:
    assert encode_permission_denied("no") == b"\x02\x00\x02no"


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"", "truncated"),
        (b"\x00", "truncated"),
        (b"\x00\x02\x05ab", "shorter than its length"),
        (b"\x07", "unknown message type 7"),
        (b"\x00\x09\x00", "unknown sync message type 9"),
        (b"\x03\x00", "trailing bytes"),
        (b"\xff" * 12, "malformed number"),
    ],
)
def test_malformed_frames_say_why(frame: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        parse_frame(frame)


def test_awareness_state_must_be_a_json_object() -> None:
    with pytest.raises(ProtocolError):
        decode_awareness(b"\x01\x05\x01" + write_message(b"[1,2]"))
    with pytest.raises(ProtocolError):
        decode_awareness(b"\x01\x05\x01" + write_message(b"{oops"))
    with pytest.raises(ProtocolError):
        decode_awareness(b"\x01\x05\x01" + write_message(b"\xff\xfe"))


def test_thousands_of_generated_bad_frames_all_rejected() -> None:
    from collab.sync.replica import Replica

    replica = Replica()
    rejected = 0
    for frame in bad_frames(20_000):
        with pytest.raises(ProtocolError):
            parsed = parse_frame(frame)
            # Framing may be fine while the content is not: the replica must refuse it too.
            if parsed.kind in (FrameKind.SYNC_UPDATE, FrameKind.SYNC_STEP2):
                replica.apply(parsed.payload)
            elif parsed.kind is FrameKind.AWARENESS:
                replica.apply_awareness(parsed.payload, "fuzz", lambda cid: True)
        rejected += 1
    assert rejected == 20_000
    assert str(replica.doc.get("text", type=Text)) == ""
