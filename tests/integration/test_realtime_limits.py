"""A misbehaving client never hurts anyone else: the app-level bounds, through the ASGI app.

(What lives in daphne/autobahn, such as send and receive buffers and the 4413 refusal of a
message over the limit, is tested against a real server in tests/interop/test_hostile_clients.)
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.db import database_sync_to_async
from pycrdt import Doc, Text, create_awareness_message, create_sync_message, create_update_message

from collab.realtime.hub import current_hub
from collab.realtime.rooms import Room
from events.models import Event
from events.selectors import document_replay
from tests.integration.conftest import Connect, Peer, make_document, make_user
from tests.waiting import eventually
from tests.ytest import awareness_update, find_panicking_update, rich_updates, same_document

pytestmark = pytest.mark.django_db(transaction=True)

EMPTY_STEP1 = b"\x00\x00\x01\x00"  # SyncStep1 with an empty state vector


@database_sync_to_async
def logged_updates(document: Any) -> list[bytes]:
    return [
        bytes(u)
        for u in Event.objects.filter(document=document)
        .order_by("seq")
        .values_list("update", flat=True)
    ]


@database_sync_to_async
def replayed_state(document: Any) -> bytes:
    """The document as the log rebuilds it, encoded."""
    doc: Doc[Any] = Doc()
    for update in document_replay(document_id=document.id).updates:
        doc.apply_update(update)
    return doc.get_update()


def _room(document: Any) -> Room:
    return current_hub().rooms[document.id]


class _Broken:
    """A member whose every send fails, as autobahn's Disconnected did for a closing socket."""

    connection_id = "broken"
    can_write = False
    sends = 0

    async def send_frame(self, frame: bytes) -> None:
        self.sends += 1
        raise RuntimeError("Attempt to send on a closed protocol")

    async def close_with(self, code: int, reason: str) -> None:
        pass


async def test_a_member_whose_sends_fail_never_stalls_the_room(connect: Connect) -> None:
    alice, alice_token = await make_user("alice")
    bob, bob_token = await make_user("bob")
    document = await make_document(alice, editors=(bob,))
    a = await connect(document.id, alice_token)
    b = await connect(document.id, bob_token)
    broken = _Broken()
    _room(document).members.add(broken)  # first in no particular order: sets are unordered
    for word in ("one ", "two ", "three"):
        await a.y.insert(len(str(a.y)), word)
    await b.pump()
    assert str(b.y) == "one two three", "the batch reached every other member"
    assert broken.sends >= 1  # merged: one frame may carry several of the updates
    # Every update settled: a fresh SyncStep1 is answered (it waits for all in flight).
    late = await connect(document.id, bob_token)
    assert str(late.y) == "one two three"
    assert len(await logged_updates(document)) == 3
    for peer in (a, b, late):
        await peer.close()


async def test_awareness_over_its_bounds_closes_the_sender_only(
    connect: Connect, settings: Any
) -> None:
    settings.PALIMPSEST_AWARENESS_CLIENTS_MAX = 2
    settings.PALIMPSEST_AWARENESS_STATE_BYTES = 200
    alice, token = await make_user("alice")
    document = await make_document(alice)
    witness = await connect(document.id, token)
    many = await connect(document.id, token)
    for client_id in (11, 12):
        await many.send(create_awareness_message(awareness_update(client_id, {"n": client_id})))
    await many.pump()
    assert many.closed is None, "two ids are within the cap"
    await many.send(create_awareness_message(awareness_update(13, {"n": 13})))
    await many.pump()
    assert many.closed is not None and many.closed["code"] == 4400
    big = await connect(document.id, token)
    await big.send(create_awareness_message(awareness_update(21, {"pad": "x" * 300})))
    await big.pump()
    assert big.closed is not None and big.closed["code"] == 4400
    assert not _room(document).replica.knows_awareness_of(21)
    await witness.y.insert(0, "still here")
    await witness.pump()
    assert witness.closed is None
    for peer in (witness, many, big):
        await peer.close()


def _out_of_order(count: int) -> tuple[list[bytes], bytes]:
    """`count` updates that all wait on one missing update, and that missing update."""
    doc: Doc[Any] = Doc(client_id=4242)
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    text = doc.get("text", type=Text)
    for i in range(count + 1):
        text.insert(i, "abcdefghijklmnopqrstuvwxyz"[i % 26])
    return updates[1:], updates[0]


async def test_parked_updates_are_bounded_and_the_refused_one_is_forgotten(
    connect: Connect, settings: Any
) -> None:
    settings.PALIMPSEST_PARKED_MAX_UPDATES = 3
    alice, token = await make_user("alice")
    document = await make_document(alice)
    witness = await connect(document.id, token)
    waiting, missing = _out_of_order(4)
    sender = await connect(document.id, token)
    for update in waiting[:3]:
        await sender.send(create_update_message(update))
    await sender.pump()
    assert sender.closed is None
    assert _room(document).replica.parked == 3
    await sender.send(create_update_message(waiting[3]))
    await sender.pump()
    assert sender.closed is not None and sender.closed["code"] == 4400
    logged = await logged_updates(document)
    assert logged == waiting[:3], "parked updates are logged; the refused one nowhere"
    # The replica was rebuilt from the log: yrs no longer holds the refused structs.
    await eventually(lambda: _room(document).rebuilding is None, 5, "the rebuild done")
    room = _room(document)
    assert room.replica.parked == 3
    # When the missing update arrives, the three integrate, and the fourth is not there.
    await witness.send(create_update_message(missing))
    await witness.pump()
    fresh = await connect(document.id, token)
    assert str(fresh.y) == "abcd"
    assert same_document(room.replica.doc.get_update(), await replayed_state(document))
    for peer in (witness, sender, fresh):
        await peer.close()


async def test_an_update_that_panics_yrs_closes_its_sender_and_changes_nothing(
    connect: Connect,
) -> None:
    base = rich_updates()[:20]
    poison = find_panicking_update(base)
    alice, token = await make_user("alice")
    document = await make_document(alice)
    writer = await connect(document.id, token)
    for update in base:
        await writer.send(create_update_message(update))
    await writer.pump()
    before = await replayed_state(document)
    attacker = await connect(document.id, token)
    await attacker.send(create_update_message(poison))
    await attacker.pump()
    assert attacker.closed is not None and attacker.closed["code"] == 4400
    assert len(await logged_updates(document)) == len(base), "the poison is logged nowhere"
    await eventually(lambda: _room(document).rebuilding is None, 5, "the rebuild done")
    room = _room(document)
    assert same_document(room.replica.doc.get_update(), before)
    # The room goes on: an edit after the panic reaches a newcomer and the log.
    await writer.y.insert(0, "after ")
    fresh = await connect(document.id, token)
    assert "after " in str(fresh.y)
    logged = await replayed_state(document)
    assert len(await logged_updates(document)) == len(base) + 1
    assert same_document(room.replica.doc.get_update(), logged)
    assert same_document(fresh.y.doc.get_update(), logged)
    for peer in (writer, attacker, fresh):
        await peer.close()


async def test_whole_document_answers_are_paced_and_merged_never_dropped(
    connect: Connect, settings: Any
) -> None:
    settings.PALIMPSEST_FULL_STATE_SECONDS = 0.5
    settings.PALIMPSEST_FAR_BEHIND_CLOCKS = 100
    alice, token = await make_user("alice")
    vera, vera_token = await make_user("vera")
    document = await make_document(alice, viewers=(vera,))
    writer = await connect(document.id, token)
    await writer.y.insert(0, "x" * 5_000)
    asker = await connect(document.id, vera_token, sync=False)
    await asker.pump()  # the server's SyncStep1 and awareness
    answers = 0
    for _ in range(200):
        await asker.send(EMPTY_STEP1)
        await asker.send(b"\x03")  # query awareness
    while not await asker.ws.receive_nothing(1.2):
        message = await asker.ws.receive_output()
        if message.get("bytes", b"")[:2] == b"\x00\x01":
            answers += 1
    # One at once and one merged answer for the other 199, which came within the interval.
    assert answers == 2
    # A client that is not far behind is answered at once, every time.
    for _ in range(5):
        await writer.send(create_sync_message(writer.y.doc))
    assert await writer.pump() == 5
    await asker.close()
    await writer.close()


async def test_a_user_may_open_only_so_many_sockets(connect: Connect, settings: Any) -> None:
    settings.PALIMPSEST_CONNECTIONS_PER_USER = 2
    alice, token = await make_user("alice")
    document = await make_document(alice)
    first = await connect(document.id, token)
    second = await connect(document.id, token)
    third = await connect(document.id, token, sync=False)
    await third.pump()
    assert third.closed is not None and third.closed["code"] == 4429
    assert "limit is 2" in third.closed["reason"]
    await first.close()
    await asyncio.sleep(0.05)
    again: Peer = await connect(document.id, token)
    assert again.closed is None
    for peer in (second, again):
        await peer.close()
