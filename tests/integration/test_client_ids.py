"""Yjs client ids belong to the account that first wrote under them: another account's update
under one is refused with 4400 and never reaches the log or anyone; the map is served to
members, kept across rooms and processes, and filled from logs written before."""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.apps import apps
from django.test import AsyncClient
from pycrdt import Doc, Text, create_update_message

from collab.realtime.hub import hub_shutdown
from collab.sync.colors import author_color
from events.authors import Claim, clients_claim
from events.models import ClientAuthor, Event
from events.restore import document_restore
from events.services import NewEvent, event_append_batch
from tests.integration.conftest import Connect, make_document, make_user
from tests.integration.test_history import Writer

pytestmark = pytest.mark.django_db(transaction=True)

STOLEN = 1_111_111


class Typist:
    """A Yjs document with a fixed client id; each edit is one update."""

    def __init__(self, client_id: int) -> None:
        self.doc: Doc[Any] = Doc(client_id=client_id)
        self.text = self.doc.get("text", type=Text)

    def type(self, chunk: str) -> bytes:
        """Append `chunk`; the update."""
        before = self.doc.get_state()
        self.text += chunk
        return self.doc.get_update(before)

    def delete_all(self) -> bytes:
        """Delete the whole text; the update (a delete set only)."""
        before = self.doc.get_state()
        del self.text[0 : len(self.text)]
        return self.doc.get_update(before)


@database_sync_to_async
def _logged(document: Any) -> list[tuple[int | None, int]]:
    return list(Event.objects.filter(document=document).values_list("actor_id", "seq"))


@database_sync_to_async
def _claims(document: Any) -> dict[int, int | None]:
    return dict(ClientAuthor.objects.filter(document=document).values_list("client_id", "actor_id"))


async def _authors(token: str | None, document: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return await AsyncClient().get(f"/api/docs/{document.id}/authors", headers=headers)


async def test_an_update_under_another_accounts_client_id_is_refused(connect: Connect) -> None:
    alice, alice_token = await make_user("alice")
    bob, bob_token = await make_user("bob")
    vi, vi_token = await make_user("vi")
    _, eve_token = await make_user("eve")
    document = await make_document(alice, editors=(bob,), viewers=(vi,))
    stolen = Typist(STOLEN)  # alice's document, whose id bob has learnt

    writer = await connect(document.id, alice_token)
    await writer.send(create_update_message(stolen.type("alice wrote this")))
    await writer.pump()
    assert len(await _logged(document)) == 1
    witness = await connect(document.id, vi_token)
    assert str(witness.y.doc.get("text", type=Text)) == "alice wrote this"

    forger = await connect(document.id, bob_token)
    await forger.send(create_update_message(stolen.type(" and bob too")))
    await forger.pump(quiet=0.5)
    assert forger.closed is not None and forger.closed["code"] == 4400
    assert await _logged(document) == [(alice.pk, 1)]
    assert await witness.pump(quiet=0.3) == 0  # relayed to nobody

    # Bob under his own id is fine, and so is deleting alice's text (no item under her id).
    own = Typist(2_222_222)
    own.doc.apply_update(stolen.doc.get_update())
    honest = await connect(document.id, bob_token)
    await honest.send(create_update_message(own.type("!")))
    await honest.send(create_update_message(own.delete_all()))
    await honest.pump()
    assert honest.closed is None
    assert [actor for actor, _ in await _logged(document)] == [alice.pk, bob.pk, bob.pk]
    for peer in (writer, witness, honest):
        await peer.close()

    # The claim outlives the room: a fresh one (as in another process) asks the database.
    await hub_shutdown()
    again = Typist(STOLEN)
    again.doc.apply_update(stolen.doc.get_update())
    forger = await connect(document.id, bob_token)
    await forger.send(create_update_message(again.type("x")))
    await forger.pump(quiet=0.5)
    assert forger.closed is not None and forger.closed["code"] == 4400
    writer = await connect(document.id, alice_token)
    await writer.send(create_update_message(again.type("y")))
    await writer.pump()
    assert writer.closed is None and len(await _logged(document)) == 4
    await writer.close()

    # Members see the map with the carets' colours; others do not.
    response = await _authors(vi_token, document)
    assert response.status_code == 200
    shown = {entry["client_id"]: entry for entry in response.json()}
    assert shown[STOLEN] == {"client_id": STOLEN, "author": "alice", "color": author_color("alice")}
    assert shown[2_222_222]["author"] == "bob"
    assert (await _authors(eve_token, document)).status_code == 404
    assert (await _authors(None, document)).status_code == 401


async def test_an_id_written_on_another_process_since_the_room_opened_is_asked_for(
    connect: Connect, hub: Any
) -> None:
    alice, _ = await make_user("alice")
    bob, bob_token = await make_user("bob")
    document = await make_document(alice, editors=(bob,))
    forger = await connect(document.id, bob_token)  # the room opens, knowing no claims
    # Alice writes on another process: her claim and her event, then the rooms catch up.
    stolen = Typist(STOLEN)
    update = stolen.type("written elsewhere")
    await database_sync_to_async(clients_claim)([Claim(document.id, STOLEN, alice.pk)])
    await database_sync_to_async(event_append_batch)(
        items=[NewEvent(document_id=document.id, update=update, actor_id=alice.pk)]
    )
    await hub.on_room_message({"type": "doc.catchup", "doc": document.id.hex})
    await forger.pump()
    assert str(forger.y.doc.get("text", type=Text)) == "written elsewhere"
    await forger.send(create_update_message(stolen.type(" and forged here")))
    await forger.pump(quiet=0.5)
    assert forger.closed is not None and forger.closed["code"] == 4400
    assert await _logged(document) == [(alice.pk, 1)]


async def test_a_new_id_is_the_senders_at_once_and_written_in_the_background(
    connect: Connect, hub: Any
) -> None:
    alice, alice_token = await make_user("alice")
    document = await make_document(alice)
    writer = await connect(document.id, alice_token)
    for index in range(3):
        await writer.send(create_update_message(Typist(7_000 + index).type("x")))
    await writer.pump()
    await hub.claims.drain()
    assert await _claims(document) == {7_000: alice.pk, 7_001: alice.pk, 7_002: alice.pk}
    await writer.close()


async def test_an_id_claimed_elsewhere_at_the_same_moment_closes_the_later_socket(
    connect: Connect, hub: Any
) -> None:
    alice, _ = await make_user("alice")
    bob, bob_token = await make_user("bob")
    document = await make_document(alice, editors=(bob,))
    late = await connect(document.id, bob_token)
    # Another process claimed the id for alice, and her edit has not reached this one yet.
    await database_sync_to_async(clients_claim)([Claim(document.id, 8_000, alice.pk)])
    await late.send(create_update_message(Typist(8_000).type("same id, same moment")))
    await late.pump(quiet=0.5)
    assert late.closed is not None and late.closed["code"] == 4400
    # The one edit taken before the answer stays credited to the account that sent it.
    assert await _logged(document) == [(bob.pk, 1)]


async def test_a_restore_writes_under_an_id_claimed_for_the_restorer(connect: Connect) -> None:
    alice, alice_token = await make_user("alice")
    document = await make_document(alice)
    writer = Writer(Doc(client_id=3_333_333))
    peer = await connect(document.id, alice_token)
    await peer.send(create_update_message(writer.paragraph("first")))
    before = writer.doc.get_state()
    del writer.fragment.children[0]
    await peer.send(create_update_message(writer.doc.get_update(before)))
    await peer.pump()
    await peer.close()
    # Bringing the deleted paragraph back inserts it anew, under a client id of the server's.
    await database_sync_to_async(document_restore)(document=document, by=alice, seq=1)
    claims = await _claims(document)
    assert claims[3_333_333] == alice.pk
    assert len(claims) == 2 and set(claims.values()) == {alice.pk}


def test_logs_written_before_claims_are_filled_from_the_log() -> None:
    from django.contrib.auth import get_user_model

    from collab.services import document_create

    model = get_user_model()
    olga, ed = model.objects.create_user("olga"), model.objects.create_user("ed")
    document = document_create(owner=olga, title="old")
    first, second = Typist(41), Typist(42)
    second.doc.apply_update(first.doc.get_update())
    items = [
        NewEvent(document_id=document.id, update=first.type("a"), actor_id=olga.pk),
        NewEvent(document_id=document.id, update=second.type("b"), actor_id=ed.pk),
        # A later event under 41 by someone else does not take it over.
        NewEvent(document_id=document.id, update=first.type("c"), actor_id=ed.pk),
        NewEvent(document_id=document.id, update=b"\x00junk", actor_id=ed.pk),
    ]
    event_append_batch(items=items)
    ClientAuthor.objects.all().delete()
    migration = importlib.import_module("events.migrations.0006_client_authors")
    migration._fill(apps, None)
    claims = dict(ClientAuthor.objects.values_list("client_id", "actor_id"))
    assert claims == {41: olga.pk, 42: ed.pk}
