"""The y-websocket endpoint end to end through the ASGI app, on whichever backends are set."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.conf import settings

from collab.models import PresenceSession
from collab.realtime.hub import hub_shutdown
from collab.sync.colors import author_color
from events.models import Event
from tests.integration.conftest import Connect, make_document, make_user
from tests.waiting import eventually
from tests.ytest import bad_frames

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def event_count(document: Any) -> int:
    return Event.objects.filter(document=document).count()


@database_sync_to_async
def event_seqs(document: Any) -> list[int]:
    return list(Event.objects.filter(document=document).values_list("seq", flat=True))


@database_sync_to_async
def event_actors(document: Any) -> set[int]:
    return set(Event.objects.filter(document=document).values_list("actor_id", flat=True))


async def test_two_clients_converge_and_every_update_is_logged_once(connect: Connect) -> None:
    alice, alice_token = await make_user("alice")
    bob, bob_token = await make_user("bob")
    document = await make_document(alice, editors=(bob,))
    a = await connect(document.id, alice_token)
    b = await connect(document.id, bob_token)

    await a.y.insert(0, "Hello")
    await b.pump()
    await b.y.insert(5, ", world")
    await a.pump()
    await a.y.insert(0, ">> ")
    await b.pump()
    await a.pump()

    assert str(a.y) == str(b.y) == ">> Hello, world"
    assert await event_seqs(document) == [1, 2, 3]
    assert await event_actors(document) == {alice.pk, bob.pk}
    await a.close()
    await b.close()


async def test_duplicate_and_empty_updates_are_not_logged(connect: Connect) -> None:
    alice, token = await make_user("alice")
    document = await make_document(alice)
    a = await connect(document.id, token)
    update = await a.y.insert(0, "once")
    await a.send(b"\x00\x02" + bytes([len(update)]) + update)  # the same update again
    await a.send(b"\x00\x02\x02\x00\x00")  # an empty update
    # A marker after them on the same socket: once it is logged, they were handled.
    await a.y.insert(4, "!")

    async def marker_logged() -> bool:
        return await event_count(document) >= 2

    await eventually(marker_logged, 5, "the marker logged")
    assert await event_count(document) == 2
    await a.close()


async def test_viewer_receives_but_cannot_write(connect: Connect) -> None:
    alice, alice_token = await make_user("alice")
    vera, vera_token = await make_user("vera")
    document = await make_document(alice, viewers=(vera,))
    a = await connect(document.id, alice_token)
    v = await connect(document.id, vera_token)

    await a.y.insert(0, "read me")
    await v.pump()
    assert str(v.y) == "read me"

    await v.y.insert(0, "vandal ")
    await v.pump()
    assert v.y.denied, "the viewer was not told the edit was refused"
    assert v.closed is None, "a viewer stays connected and keeps receiving"
    await a.pump()
    assert str(a.y) == "read me"
    assert await event_count(document) == 1
    await a.close()
    await v.close()


async def test_strangers_unknown_documents_and_bad_tokens_are_refused(connect: Connect) -> None:
    alice, _ = await make_user("alice")
    _, mallory_token = await make_user("mallory")
    document = await make_document(alice)
    await connect(document.id, mallory_token, expect=False)
    await connect(document.id, "not-a-token", expect=False)
    await connect(document.id, None, expect=False)
    await connect("00000000-0000-0000-0000-000000000000", mallory_token, expect=False)
    await connect("not-a-uuid", mallory_token, expect=False)


@pytest.mark.parametrize(
    ("origin", "accepted"),
    [
        (b"http://127.0.0.1:8000", True),  # the same origin (PORT's default)
        (b"http://localhost:8000", True),
        (b"http://127.0.0.1:8001", False),  # another port of the same host
        (b"https://127.0.0.1:8000", False),  # another scheme of the same host
        (b"https://evil.example", False),
        (b"null", False),  # sandboxed frames and local files
        (None, True),  # a script with a token sends no Origin
    ],
)
async def test_only_exactly_our_origins_are_accepted_even_with_a_token(
    connect: Connect, origin: bytes | None, accepted: bool
) -> None:
    alice, token = await make_user("alice")
    document = await make_document(alice)
    headers = [] if origin is None else [(b"origin", origin)]
    peer = await connect(document.id, token, headers=headers, expect=accepted)
    if accepted:
        await peer.close()


async def test_bad_frames_close_the_sender_only_and_log_nothing(connect: Connect) -> None:
    alice, alice_token = await make_user("alice")
    bob, bob_token = await make_user("bob")
    document = await make_document(alice, editors=(bob,))
    witness = await connect(document.id, bob_token)
    await witness.y.insert(0, "steady")
    frames = list(bad_frames(1_000))
    for frame in frames:
        attacker = await connect(document.id, alice_token, sync=False)
        # send_input, not send_to: an empty binary frame is one of the bad ones.
        await attacker.ws.send_input({"type": "websocket.receive", "bytes": frame})
        await attacker.pump(quiet=1)
        assert attacker.closed is not None, f"frame {frame!r} did not close the connection"
        assert 4400 <= attacker.closed["code"] <= 4499
        await attacker.close()
    assert await event_count(document) == 1
    # The witness was never disturbed and the room still works.
    await witness.pump()
    assert witness.closed is None
    assert witness.y.denied == []
    await witness.y.insert(6, "!")
    late = await connect(document.id, alice_token)
    assert str(late.y) == "steady!"
    assert await event_count(document) == 2
    await witness.close()
    await late.close()


async def test_text_and_oversized_frames_are_refused(connect: Connect, settings: Any) -> None:
    settings.PALIMPSEST_MAX_FRAME_BYTES = 1000
    alice, token = await make_user("alice")
    document = await make_document(alice)
    peer = await connect(document.id, token)
    await peer.ws.send_to(text_data="hello")
    await peer.pump()
    assert peer.closed is not None and peer.closed["code"] == 4415
    peer = await connect(document.id, token)
    await peer.y.insert(0, "x" * 2000)
    await peer.pump()
    assert peer.closed is not None and peer.closed["code"] == 4413
    assert await event_count(document) == 0


async def test_reopen_after_restart_gives_the_same_document(connect: Connect) -> None:
    alice, token = await make_user("alice")
    document = await make_document(alice)
    peer = await connect(document.id, token)
    for i, word in enumerate(["alpha ", "beta ", "gamma"]):
        await peer.y.insert(len(str(peer.y)), word)
        if i == 1:
            await peer.y.delete(0, 2)
    await peer.close()
    await hub_shutdown()  # the server process goes away; only the log remains

    fresh = await connect(document.id, token)
    assert str(fresh.y) == "pha beta gamma"
    await fresh.close()


async def test_presence_rows_follow_connections(connect: Connect) -> None:
    from pycrdt import Awareness, create_awareness_message

    alice, token = await make_user("alice")
    document = await make_document(alice)
    peer = await connect(document.id, token)
    count = database_sync_to_async(
        lambda: PresenceSession.objects.filter(document=document, user=alice).count()
    )
    assert await count() == 1
    # The awareness ids a connection announces reach its row, without holding up its frames.
    awareness = Awareness(peer.y.doc)
    awareness.set_local_state({"user": {"name": "alice"}})
    await peer.send(
        create_awareness_message(awareness.encode_awareness_update([peer.y.doc.client_id]))
    )
    client_ids = database_sync_to_async(
        lambda: PresenceSession.objects.get(document=document, user=alice).yjs_client_ids
    )

    async def announced() -> bool:
        return await client_ids() == [peer.y.doc.client_id]

    await eventually(announced, 5, "the announced awareness id in the presence row")
    await peer.close()

    async def gone() -> bool:
        return await count() == 0

    await eventually(gone, 5, "the presence row removed")


async def test_awareness_is_relayed_and_removed_when_a_client_leaves(connect: Connect) -> None:
    from pycrdt import Awareness, create_awareness_message

    from collab.sync.protocol import decode_awareness

    alice, alice_token = await make_user("alice")
    bob, bob_token = await make_user("bob")
    document = await make_document(alice, editors=(bob,))
    a = await connect(document.id, alice_token)
    b = await connect(document.id, bob_token)
    awareness = Awareness(a.y.doc)
    awareness.set_local_state({"user": {"name": "alice"}})
    await a.send(create_awareness_message(awareness.encode_awareness_update([a.y.doc.client_id])))
    await b.pump()
    alice_user = {"name": "alice", "color": author_color("alice")}
    assert decode_awareness(b.y.awareness[-1])[0].state == {"user": alice_user}
    # Her events carry the Yjs client id she announced, and her user as the actor.
    await a.y.insert(0, "hi")
    await b.pump()
    stamped = await database_sync_to_async(
        lambda: list(Event.objects.filter(document=document).values_list("actor", "yjs_client_id"))
    )()
    assert stamped == [(alice.pk, a.y.doc.client_id)]

    # Bob may not speak for Alice's client id: his echo of her removal changes nothing.
    awareness.remove_awareness_states([a.y.doc.client_id], "local")
    await b.send(create_awareness_message(awareness.encode_awareness_update([a.y.doc.client_id])))
    await b.pump()
    assert b.closed is None

    c = await connect(document.id, bob_token)
    seen = decode_awareness(c.y.awareness[-1])[0]
    assert seen.client_id == a.y.doc.client_id
    assert seen.state == {"user": alice_user}
    await a.close()
    await c.pump()
    gone = decode_awareness(c.y.awareness[-1])[0]
    assert gone.client_id == a.y.doc.client_id and gone.state is None
    await c.close()


async def test_catch_up_applies_what_the_layer_never_delivered(connect: Connect, hub: Any) -> None:
    from pycrdt import Doc, Text

    from events.services import NewEvent, event_append_batch

    alice, token = await make_user("alice")
    document = await make_document(alice)
    peer = await connect(document.id, token)
    # Another process logged this, and its pub/sub message was lost.
    other = Doc()
    other.get("text", type=Text).insert(0, "from elsewhere")
    await database_sync_to_async(event_append_batch)(
        items=[NewEvent(document_id=document.id, update=other.get_update(), actor_id=alice.pk)]
    )
    await peer.pump()
    assert str(peer.y) == ""
    await hub.catch_up()
    await peer.pump()
    assert str(peer.y) == "from elsewhere"
    await peer.close()


def test_concurrent_appenders_never_share_or_skip_a_seq(transactional_db: None) -> None:
    import threading

    from django.contrib.auth import get_user_model
    from django.db import connections

    from collab.services import document_create
    from events.services import NewEvent, event_append_batch
    from tests.ytest import sample_update

    owner = get_user_model().objects.create_user(username="owner")
    document = document_create(owner=owner, title="contended")
    errors: list[BaseException] = []

    def append_many() -> None:
        try:
            for _ in range(20):
                event_append_batch(
                    items=[
                        NewEvent(document_id=document.id, update=sample_update(), actor_id=None)
                        for _ in range(5)
                    ]
                )
        except BaseException as exc:  # collected and re-raised by the test thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=append_many) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    seqs = sorted(Event.objects.filter(document=document).values_list("seq", flat=True))
    assert seqs == list(range(1, 401))
    # Times are read under the lock, so they never go back as the seqs go on.
    times = list(
        Event.objects.filter(document=document).order_by("seq").values_list("created_at", flat=True)
    )
    assert times == sorted(times)


async def test_idle_rooms_stay_warm_then_unload(connect: Connect, hub: Any, settings: Any) -> None:
    settings.PALIMPSEST_ROOM_IDLE_SECONDS = 0.3
    alice, token = await make_user("alice")
    document = await make_document(alice)
    peer = await connect(document.id, token)
    await peer.y.insert(0, "warm")
    await peer.pump()
    await peer.close()
    await asyncio.sleep(0.05)
    assert document.id in hub.rooms, "a room just left is kept for a quick return"
    again = await connect(document.id, token)
    assert str(again.y) == "warm"
    await again.close()
    await eventually(lambda: document.id not in hub.rooms, 5, "an idle room dropped")
    cold = await connect(document.id, token)
    assert str(cold.y) == "warm"
    await cold.close()


async def test_heartbeats_keep_presence_fresh(connect: Connect, settings: Any) -> None:
    settings.PALIMPSEST_HEARTBEAT_SECONDS = 0.1
    alice, token = await make_user("alice")
    document = await make_document(alice)
    peer = await connect(document.id, token)
    last_seen = database_sync_to_async(
        lambda: PresenceSession.objects.get(document=document, user=alice).last_seen
    )
    first = await last_seen()

    async def refreshed() -> bool:
        return await last_seen() > first

    await eventually(refreshed, 5, "a heartbeat")
    await peer.close()


async def test_awareness_sent_together_reaches_each_member_as_one_frame(
    connect: Connect, settings: Any
) -> None:
    from pycrdt import Awareness, create_awareness_message

    from collab.sync.protocol import decode_awareness

    # A window wide enough that a slow machine still gets both updates into it.
    settings.PALIMPSEST_AWARENESS_RELAY_SECONDS = 0.5

    alice, alice_token = await make_user("alice")
    bob, bob_token = await make_user("bob")
    carol, carol_token = await make_user("carol")
    document = await make_document(alice, editors=(bob, carol))
    a = await connect(document.id, alice_token)
    b = await connect(document.id, bob_token)
    c = await connect(document.id, carol_token)
    for peer, name in ((a, "alice"), (b, "bob")):
        awareness = Awareness(peer.y.doc)
        awareness.set_local_state({"user": {"name": name}})
        await peer.send(
            create_awareness_message(awareness.encode_awareness_update([peer.y.doc.client_id]))
        )
    seen = {p: len(p.y.awareness) for p in (a, b, c)}
    for peer in (a, b, c):
        await peer.pump(quiet=0.8)

    def names(peer: Any) -> list[list[str]]:
        frames = peer.y.awareness[seen[peer] :]
        return [[e.state["user"]["name"] for e in decode_awareness(f)] for f in frames]

    # One frame each, holding everyone's news but the member's own.
    assert names(c) == [["alice", "bob"]]
    assert names(a) == [["bob"]]
    assert names(b) == [["alice"]]
    for peer in (a, b, c):
        await peer.close()


def _on_sqlite() -> bool:
    return bool(settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3")


async def test_small_batches_skip_the_writer_thread(
    connect: Connect, monkeypatch: pytest.MonkeyPatch
) -> None:
    import events.storage as storage_module

    thread_batches: list[int] = []
    append = storage_module.event_append_batch

    def counted(*, items: Any, heads_out: Any = None) -> list[int]:
        thread_batches.append(len(items))
        return append(items=items, heads_out=heads_out)

    alice, alice_token = await make_user("alice")
    bob, bob_token = await make_user("bob")
    document = await make_document(alice, editors=(bob,))
    a = await connect(document.id, alice_token)
    b = await connect(document.id, bob_token)
    monkeypatch.setattr(storage_module, "event_append_batch", counted)
    await a.y.insert(0, "direct")
    await b.pump()
    assert str(b.y) == "direct"
    await a.y.insert(6, "!")
    await b.pump()
    assert str(b.y) == "direct!"
    assert await event_seqs(document) == [1, 2]
    # Both from the event loop: SQLite on the loop's own connection, PostgreSQL on its async
    # one (the first reading the head under the row's lock, the next with it cached).
    assert thread_batches == []
    await a.close()
    await b.close()


class _WriteLockHolder:
    """Another connection (a management command, say) holding what an append must wait for."""

    def __init__(self, document_id: Any) -> None:
        self.document_id = document_id
        self.connection: Any = None

    def __enter__(self) -> None:
        db = settings.DATABASES["default"]
        if _on_sqlite():
            import sqlite3

            self.connection = sqlite3.connect(db["NAME"], isolation_level=None)
            self.connection.execute("BEGIN IMMEDIATE")
        else:
            import psycopg

            self.connection = psycopg.connect(
                host=db["HOST"],
                port=db["PORT"] or 5432,
                user=db["USER"],
                password=db["PASSWORD"],
                dbname=db["NAME"],
            )
            self.connection.execute(
                "SELECT id FROM collab_document WHERE id = %s FOR UPDATE", (self.document_id,)
            )

    def __exit__(self, *exc: object) -> None:
        if _on_sqlite():
            self.connection.execute("COMMIT")
        else:
            self.connection.commit()
        self.connection.close()


async def test_an_append_waiting_for_the_write_lock_reaches_nobody_until_it_is_durable(
    connect: Connect,
) -> None:
    alice, alice_token = await make_user("alice")
    bob, bob_token = await make_user("bob")
    document = await make_document(alice, editors=(bob,))
    elsewhere = await make_document(bob)
    a = await connect(document.id, alice_token)
    b = await connect(document.id, bob_token)
    newcomer = await connect(document.id, bob_token, sync=False)
    bystander = await connect(elsewhere.id, bob_token)
    with _WriteLockHolder(document.id):
        await a.y.insert(0, "waits")
        await b.pump(quiet=0.3)
        # Not durable yet, so relayed to nobody, not even in the answer to a SyncStep1.
        assert str(b.y) == ""
        await newcomer.y.start_sync()
        await newcomer.pump(quiet=0.3)
        assert str(newcomer.y) == ""
        # Meanwhile the event loop kept serving everyone else.
        await bystander.y.start_sync()
        assert await bystander.pump(quiet=0.3) > 0
    await b.pump()
    await newcomer.pump()
    assert str(b.y) == str(newcomer.y) == "waits"
    assert await event_seqs(document) == [1]
    for peer in (a, b, newcomer, bystander):
        await peer.close()
