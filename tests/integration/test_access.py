"""Access changes take effect on open sockets at once: demotion, removal (on either backend;
with Redis the change travels through the channel layer as between processes)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from channels.db import database_sync_to_async

from collab.services import member_add, member_remove
from events.models import Event
from tests.integration.conftest import Connect, Peer, make_document, make_user

pytestmark = pytest.mark.django_db(transaction=True)


@database_sync_to_async
def logged_count(document: Any) -> int:
    return Event.objects.filter(document=document).count()


async def _until(check: Any, peer: Peer, within: float = 3.0) -> float:
    """Pump `peer` until `check()` holds; the seconds it took."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < within, "the change did not reach the socket"
        await peer.pump(0.05)
    return time.monotonic() - started


async def test_a_demoted_editor_s_open_socket_turns_read_only(connect: Connect) -> None:
    alice, alice_token = await make_user("alice")
    bob, bob_token = await make_user("bob")
    document = await make_document(alice, editors=(bob,))
    a = await connect(document.id, alice_token)
    b = await connect(document.id, bob_token)
    await b.y.insert(0, "before")
    await a.pump()
    assert str(a.y) == "before"
    await database_sync_to_async(member_add)(document=document, by=alice, user=bob, role="viewer")
    took = await _until(lambda: bool(b.y.denied), b)
    print(f"demotion reached the socket in {took * 1000:.0f} ms")
    assert b"viewer" in b.y.denied[0]
    denied = len(b.y.denied)
    await b.y.insert(0, "after ")
    await b.pump()
    assert len(b.y.denied) == denied + 1, "a later edit is refused out loud"
    await a.pump()
    assert str(a.y) == "before" and await logged_count(document) == 1
    assert b.closed is None, "a viewer stays connected and keeps receiving"
    await a.y.insert(6, "!")
    await b.pump()
    assert str(b.y).endswith("before!")
    for peer in (a, b):
        await peer.close()


async def test_a_removed_member_s_socket_closes_and_receives_nothing_more(
    connect: Connect,
) -> None:
    alice, alice_token = await make_user("alice")
    bob, bob_token = await make_user("bob")
    document = await make_document(alice, editors=(bob,))
    a = await connect(document.id, alice_token)
    b = await connect(document.id, bob_token)
    await b.y.insert(0, "kept")
    await a.pump()
    await database_sync_to_async(member_remove)(document=document, by=alice, user=bob)
    took = await _until(lambda: b.closed is not None, b)
    print(f"removal closed the socket in {took * 1000:.0f} ms")
    assert b.closed is not None and b.closed["code"] == 4403
    await a.y.insert(4, " secret")
    await asyncio.sleep(0.1)
    assert await b.ws.receive_nothing(0.3), "nothing reaches a removed member"
    assert await logged_count(document) == 2
    # And they cannot come back.
    await connect(document.id, bob_token, expect=False)
    await a.close()


async def test_revoking_a_token_closes_the_sockets_it_opened_only(connect: Connect) -> None:
    from django.test import Client

    from collab.services import token_issue

    alice, alice_token = await make_user("alice")
    other_token = await database_sync_to_async(token_issue)(user=alice)
    document = await make_document(alice)
    doomed = await connect(document.id, alice_token)
    kept = await connect(document.id, other_token)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {other_token}"}
    client = Client()
    listed = await database_sync_to_async(lambda: client.get("/api/tokens", **auth).json())()
    assert [t["prefix"] for t in listed] == [other_token[:8], alice_token[:8]]
    assert all(set(t) == {"id", "prefix", "created_at", "last_used_at"} for t in listed)
    doomed_id = next(t["id"] for t in listed if t["prefix"] == alice_token[:8])
    revoked = await database_sync_to_async(
        lambda: client.delete(f"/api/tokens/{doomed_id}", **auth).status_code
    )()
    assert revoked == 204
    took = await _until(lambda: doomed.closed is not None, doomed)
    print(f"token revocation closed the socket in {took * 1000:.0f} ms")
    assert doomed.closed is not None and doomed.closed["code"] == 4403
    await kept.pump(0.3)
    assert kept.closed is None, "a socket opened with another token stays"
    # Someone else's token id is nobody's business: 404, as for one that never existed.
    _, bob_token = await make_user("bob")
    other = await database_sync_to_async(
        lambda: (
            Client()
            .delete(f"/api/tokens/{listed[0]['id']}", HTTP_AUTHORIZATION=f"Bearer {bob_token}")
            .status_code
        )
    )()
    assert other == 404
    await kept.close()


async def test_deactivating_a_user_closes_their_sockets(connect: Connect) -> None:
    alice, alice_token = await make_user("alice")
    bob, bob_token = await make_user("bob")
    document = await make_document(alice, editors=(bob,))
    b = await connect(document.id, bob_token)
    a = await connect(document.id, alice_token)

    def deactivate() -> None:
        bob.is_active = False
        bob.save()

    await database_sync_to_async(deactivate)()
    took = await _until(lambda: b.closed is not None, b)
    print(f"deactivation closed the socket in {took * 1000:.0f} ms")
    assert b.closed is not None and b.closed["code"] == 4403
    await a.pump(0.2)
    assert a.closed is None
    await a.close()


async def test_logging_out_closes_that_browser_session_s_sockets(connect: Connect) -> None:
    from django.test import Client

    alice, _ = await make_user("alice")
    document = await make_document(alice)
    browsers = [Client(), Client()]
    for browser in browsers:
        assert await database_sync_to_async(browser.login)(username="alice", password="pw-alice")
    origin = (b"origin", b"http://127.0.0.1:8000")

    def cookie(browser: Client) -> tuple[bytes, bytes]:
        return (b"cookie", f"sessionid={browser.cookies['sessionid'].value}".encode())

    leaving = await connect(document.id, headers=[origin, cookie(browsers[0])])
    staying = await connect(document.id, headers=[origin, cookie(browsers[1])])
    assert leaving.closed is None and staying.closed is None
    await database_sync_to_async(lambda: browsers[0].post("/accounts/logout/"))()
    took = await _until(lambda: leaving.closed is not None, leaving)
    print(f"logging out closed the page's socket in {took * 1000:.0f} ms")
    assert leaving.closed is not None and leaving.closed["code"] == 4403
    await staying.pump(0.3)
    assert staying.closed is None, "the same user's other browser stays connected"
    await staying.close()


async def test_a_removed_member_s_notification_watch_stops(connect: Connect, notes: Any) -> None:
    from collab.notify import publish

    alice, _ = await make_user("alice")
    bob, bob_token = await make_user("bob")
    document = await make_document(alice, editors=(bob,))
    inbox = await notes(bob_token)
    await inbox.watch(document.id)
    await database_sync_to_async(member_remove)(document=document, by=alice, user=bob)
    assert (await inbox.next("access.changed", 5))["document"] == str(document.id)
    unwatched = await inbox.next("unwatched", 5)
    assert unwatched["document"] == str(document.id)
    # The document's later events no longer reach the removed member.
    await database_sync_to_async(
        lambda: publish({"type": "snapshot.compacted", "document": "x"}, document_id=document.id)
    )()
    assert await inbox.ws.receive_nothing(0.5)


async def test_who_may_open_and_write_on_a_document_socket(connect: Connect) -> None:
    """The socket's matrix: owner and editor write, a viewer reads, and strangers, staff (an
    operator in the admin only) and anonymous visitors are refused at the handshake."""
    from django.contrib.auth.models import Permission

    owner, owner_token = await make_user("olga")
    editor, editor_token = await make_user("ed")
    viewer, viewer_token = await make_user("vi")
    _, stranger_token = await make_user("eve")
    staff, staff_token = await make_user("sam")

    def make_staff() -> None:
        staff.is_staff = True
        staff.save()
        staff.user_permissions.add(Permission.objects.get(codename="change_document"))

    await database_sync_to_async(make_staff)()
    document = await make_document(owner, editors=(editor,), viewers=(viewer,))
    for token in (stranger_token, staff_token, None):
        await connect(document.id, token, expect=False)
    for name, token, writes in (
        ("olga", owner_token, True),
        ("ed", editor_token, True),
        ("vi", viewer_token, False),
    ):
        peer = await connect(document.id, token)
        before = await logged_count(document)
        await peer.y.insert(0, name)
        await peer.pump()
        assert (await logged_count(document) == before + 1) is writes, name
        assert bool(peer.y.denied) is not writes, name
        await peer.close()


async def test_changing_the_password_closes_other_browser_sessions_sockets(
    connect: Connect,
) -> None:
    from django.test import Client

    alice, _ = await make_user("alice")
    document = await make_document(alice)
    browser = Client()
    assert await database_sync_to_async(browser.login)(username="alice", password="pw-alice")
    headers = [
        (b"origin", b"http://127.0.0.1:8000"),
        (b"cookie", f"sessionid={browser.cookies['sessionid'].value}".encode()),
    ]
    page = await connect(document.id, headers=headers)

    def change_password() -> None:
        alice.set_password("a-new-secret-9")
        alice.save()

    await database_sync_to_async(change_password)()
    await _until(lambda: page.closed is not None, page)
    assert page.closed is not None and page.closed["code"] == 4403
