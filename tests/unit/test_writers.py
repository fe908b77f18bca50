"""Which client ids an update writes under, read from its group headers only."""

from __future__ import annotations

from typing import Any

import pytest
from pycrdt import Doc, Text

from collab.sync.protocol import ProtocolError, encode_state_vector
from collab.sync.writers import new_writers, update_clients, writers_beyond


def _typed(doc: Doc[Any], chunk: str) -> bytes:
    before = doc.get_state()
    doc.get("text", type=Text).insert(0, chunk)
    return doc.get_update(before)


def test_every_client_of_an_update_is_named_and_only_beyond_the_vector() -> None:
    docs = [Doc(client_id=client) for client in (5, 700, 90_000)]
    for doc in docs:
        _typed(doc, f"from {doc.client_id} ")
    merged = Doc(client_id=1)
    for doc in docs:
        merged.apply_update(doc.get_update())
    whole = merged.get_update()  # what a SyncStep2 of a client holding all three would carry
    assert sorted(update_clients(whole)) == [5, 700, 90_000]
    vector = docs[1].get_state()  # holds 700's items only
    assert sorted(writers_beyond(whole, vector)) == [5, 90_000]
    assert writers_beyond(whole, merged.get_state()) == []
    # An incremental edit, whose items start past clock 0, is named too.
    assert update_clients(_typed(docs[2], "more")) == [90_000]


def test_the_senders_own_single_client_reads_no_state_vector() -> None:
    doc = Doc(client_id=42)
    update = _typed(doc, "hello")
    asked: list[bool] = []

    def vector() -> bytes:
        asked.append(True)
        return encode_state_vector({})

    assert new_writers(update, lambda client: client == 42, vector) == []
    assert asked == []
    assert new_writers(update, lambda client: False, vector) == [42]
    assert new_writers(b"\x00\x00", lambda client: False, vector) == []


def test_undecodable_updates_and_too_many_writers_are_protocol_errors() -> None:
    for junk in (b"", b"\x01", b"\xff\xff\xff", b"\x05\x01\x07\x00garbage"):
        with pytest.raises(ProtocolError):
            update_clients(junk)
    merged = Doc(client_id=1)
    for client in range(2, 1030):
        doc = Doc(client_id=client)
        _typed(doc, "x")
        merged.apply_update(doc.get_update())
    with pytest.raises(ProtocolError, match="more than 1024"):
        update_clients(merged.get_update())
