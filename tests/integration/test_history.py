"""History API: events, the document after any event, restore (live), named versions, and
who may do what on each endpoint."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.db import connections
from django.test import Client
from pycrdt import Doc, XmlElement, XmlFragment, XmlText

from collab.services import document_create, member_add, token_issue
from collab.sync.html import document_text
from collab.sync.protocol import create_update_message
from events.compaction import checkpoint_gap, checkpoints_fill, snapshot_compact
from events.history import document_content
from events.models import Event, EventKind, Snapshot
from events.restore import document_restore
from events.services import NewEvent, event_append_batch
from tests.integration.conftest import Connect, make_document, make_user

pytestmark = pytest.mark.django_db(transaction=True)


class Writer:
    """A pycrdt client editing paragraphs in the TipTap shape; each edit is one update."""

    def __init__(self, doc: Doc | None = None) -> None:
        self.doc: Doc = doc if doc is not None else Doc()
        self.fragment = self.doc.get("default", type=XmlFragment)

    def paragraph(self, text: str) -> bytes:
        """Append a paragraph holding `text`; the update."""
        before = self.doc.get_state()
        with self.doc.transaction():
            self.fragment.children.append(XmlElement("paragraph", {}, [XmlText(text)]))
        return self.doc.get_update(before)

    def type(self, index: int, text: str) -> bytes:
        """Insert into the first paragraph's text; the update."""
        before = self.doc.get_state()
        node = self.fragment.children[0].children[0]
        assert isinstance(node, XmlText)
        node.insert(index, text)
        return self.doc.get_update(before)


def _users() -> dict[str, Any]:
    """owner, editor, viewer, stranger."""
    model = get_user_model()
    return {name: model.objects.create_user(username=name) for name in ("olga", "ed", "vi", "eve")}


def _document(users: dict[str, Any]) -> Any:
    document = document_create(owner=users["olga"], title="History")
    member_add(document=document, by=users["olga"], user=users["ed"], role="editor")
    member_add(document=document, by=users["olga"], user=users["vi"], role="viewer")
    return document


def _append(document: Any, user: Any, update: bytes) -> int:
    (seq,) = event_append_batch(
        items=[NewEvent(document_id=document.id, update=update, actor_id=user.pk)]
    )
    return seq


def _call(client: Client, method: str, path: str, user: Any | None, body: Any = None) -> Any:
    headers = {} if user is None else {"HTTP_AUTHORIZATION": f"Bearer {token_issue(user=user)}"}
    if method in ("GET", "DELETE"):
        return client.generic(method, path, **headers)
    return client.generic(
        method, path, json.dumps(body), content_type="application/json", **headers
    )


def test_history_pages_list_each_event_with_its_server_stamped_actor() -> None:
    users = _users()
    document = _document(users)
    writer = Writer()
    _append(document, users["olga"], writer.paragraph("one"))
    for i in range(4):
        _append(document, users["ed"], writer.type(0, str(i)))
    client = Client()
    first = _call(client, "GET", f"/api/docs/{document.id}/history?limit=3", users["vi"]).json()
    assert [e["seq"] for e in first["events"]] == [1, 2, 3]
    assert [e["actor"] for e in first["events"]] == ["olga", "ed", "ed"]
    assert all(e["kind"] == "update" and e["size"] > 0 for e in first["events"])
    assert first["head"] == 5 and first["next_after"] == 3
    rest = _call(client, "GET", f"/api/docs/{document.id}/history?after=3", users["vi"]).json()
    assert [e["seq"] for e in rest["events"]] == [4, 5] and rest["next_after"] is None
    bad = _call(client, "GET", f"/api/docs/{document.id}/history?limit=0", users["vi"])
    assert bad.status_code == 400
    done = _call(client, "GET", f"/api/docs/{document.id}/history?after=5", users["vi"]).json()
    assert done["events"] == [] and done["next_after"] is None
    past = _call(client, "GET", f"/api/docs/{document.id}/history?after=6", users["vi"])
    assert past.status_code == 400 and "between 0 and 5" in past.json()["detail"]


def test_content_after_any_event_as_html_and_text() -> None:
    users = _users()
    document = _document(users)
    writer = Writer()
    _append(document, users["olga"], writer.paragraph("world"))
    _append(document, users["ed"], writer.type(0, "hello "))
    _append(document, users["olga"], writer.paragraph("<script>"))
    client = Client()
    base = f"/api/docs/{document.id}/content"
    at1 = _call(client, "GET", f"{base}?at=1&format=text", users["vi"]).json()
    assert at1 == {"seq": 1, "format": "text", "content": "world"}
    at2 = _call(client, "GET", f"{base}?at=2", users["vi"]).json()
    assert at2["content"].strip() == "<p>hello world</p>"
    latest = _call(client, "GET", base, users["vi"]).json()
    assert latest["seq"] == 3 and "&lt;script&gt;" in latest["content"]
    empty = _call(client, "GET", f"{base}?at=0&format=text", users["vi"]).json()
    assert empty["content"] == ""
    assert _call(client, "GET", f"{base}?at=4", users["vi"]).status_code == 400
    assert _call(client, "GET", f"{base}?format=pdf", users["vi"]).status_code == 400


def test_the_yjs_state_after_any_event_matches_the_content_then(settings: Any) -> None:
    settings.PALIMPSEST_CHECKPOINT_MIN_EVENTS = settings.PALIMPSEST_CHECKPOINT_MAX_EVENTS = 4
    users = _users()
    document = _document(users)
    writer = Writer()
    _append(document, users["olga"], writer.paragraph("world"))
    for i in range(10):
        _append(document, users["ed"], writer.type(0, str(i)))
    checkpoints_fill(document_id=document.id)
    client = Client()
    base = f"/api/docs/{document.id}"
    for seq in (0, 1, 5, 11):
        response = _call(client, "GET", f"{base}/state?at={seq}", users["vi"])
        assert response.status_code == 200, response.content
        assert response["Content-Type"] == "application/octet-stream"
        assert (response["X-Seq"], response["X-Head"]) == (str(seq), "11")
        doc: Doc = Doc()
        doc.apply_update(response.content)
        text = _call(client, "GET", f"{base}/content?at={seq}&format=text", users["vi"]).json()
        assert document_text(doc) == text["content"], seq
    latest = _call(client, "GET", f"{base}/state", users["olga"])
    assert latest["X-Seq"] == "11"
    assert _call(client, "GET", f"{base}/state?at=12", users["vi"]).status_code == 400
    assert _call(client, "GET", f"{base}/state", users["eve"]).status_code == 404
    assert _call(client, "GET", f"{base}/state", None).status_code == 401


def test_checkpoints_bound_the_replay_and_give_the_same_content(settings: Any) -> None:
    settings.PALIMPSEST_CHECKPOINT_MIN_EVENTS = settings.PALIMPSEST_CHECKPOINT_MAX_EVENTS = 10
    users = _users()
    document = _document(users)
    writer = Writer()
    _append(document, users["olga"], writer.paragraph(""))
    texts = {1: ""}
    for seq in range(2, 36):
        _append(document, users["ed"], writer.type(0, chr(ord("a") + seq % 26)))
        texts[seq] = str(writer.fragment.children[0].children[0])
    before = {s: document_content(document_id=document.id, at_seq=s).text for s in texts}
    assert checkpoints_fill(document_id=document.id) == 3
    assert sorted(Snapshot.objects.values_list("upto_seq", flat=True)) == [10, 20, 30]
    assert checkpoints_fill(document_id=document.id) == 0  # idempotent
    after = {s: document_content(document_id=document.id, at_seq=s).text for s in texts}
    assert before == after == texts


def test_restore_appends_one_event_and_keeps_the_log() -> None:
    users = _users()
    document = _document(users)
    writer = Writer()
    _append(document, users["olga"], writer.paragraph("draft"))
    _append(document, users["ed"], writer.type(5, " two"))
    _append(document, users["ed"], writer.paragraph("extra"))
    logged = list(Event.objects.filter(document=document).values_list("seq", "update"))
    client = Client()
    path = f"/api/docs/{document.id}/restore"
    response = _call(client, "POST", path, users["ed"], {"seq": 1})
    assert response.status_code == 201 and response.json() == {"seq": 4, "restored_to": 1}
    assert document_content(document_id=document.id).text == "draft"
    restore = Event.objects.get(document=document, seq=4)
    assert restore.kind == EventKind.RESTORE and restore.actor == users["ed"]
    kept = Event.objects.filter(document=document, seq__lte=3).values_list("seq", "update")
    assert [(s, bytes(u)) for s, u in kept] == [(s, bytes(u)) for s, u in logged]
    # Back to the later version: also just another event.
    again = _call(client, "POST", path, users["olga"], {"seq": 3}).json()
    assert again["seq"] == 5
    assert document_content(document_id=document.id).text == "draft two\n\nextra"
    # Restoring what is already there appends nothing.
    same = _call(client, "POST", path, users["olga"], {"seq": 5})
    assert same.status_code == 200 and same.json() == {"seq": None, "restored_to": 5}
    assert Event.objects.filter(document=document).count() == 5
    assert _call(client, "POST", path, users["olga"], {"seq": 9}).status_code == 400


def test_two_restores_at_once_append_one_copy() -> None:
    users = _users()
    document = _document(users)
    writer = Writer()
    _append(document, users["olga"], writer.paragraph("draft"))
    for i in range(200):  # a longer log: each replay takes a while, widening any race
        _append(document, users["ed"], writer.type(0, str(i % 10)))
    start = threading.Barrier(2)
    results: list[int | None] = []
    errors: list[BaseException] = []

    def restore(user: Any) -> None:
        try:
            start.wait()
            results.append(document_restore(document=document, by=user, seq=1))
        except BaseException as exc:  # re-raised by the test thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=restore, args=(users[n],)) for n in ("olga", "ed")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    # The second saw the first's restore and had nothing left to do.
    assert sorted(results, key=lambda seq: seq or 0) == [None, 202]
    assert document_content(document_id=document.id).text == "draft"
    assert Event.objects.filter(document=document, kind=EventKind.RESTORE).count() == 1


async def test_connected_clients_see_a_restore_live(connect: Connect) -> None:
    owner, owner_token = await make_user("olga")
    viewer, viewer_token = await make_user("vi")
    document = await make_document(owner, viewers=(viewer,))
    alice = await connect(document.id, owner_token)
    watcher = await connect(document.id, viewer_token)
    writer = Writer(alice.y.doc)  # alice's own replica, which also applies what she receives
    await alice.send(create_update_message(writer.paragraph("kept")))
    await alice.send(create_update_message(writer.paragraph("dropped")))
    await watcher.pump()

    def fragment(peer: Any) -> str:
        return str(peer.y.doc.get("default", type=XmlFragment))

    assert fragment(watcher) == "<paragraph>kept</paragraph><paragraph>dropped</paragraph>"
    response = await database_sync_to_async(
        lambda: _call(Client(), "POST", f"/api/docs/{document.id}/restore", owner, {"seq": 1})
    )()
    assert response.status_code == 201
    await watcher.pump(0.5)
    await alice.pump(0.5)
    assert fragment(watcher) == fragment(alice) == "<paragraph>kept</paragraph>"
    await alice.close()
    await watcher.close()


def test_named_versions() -> None:
    users = _users()
    document = _document(users)
    writer = Writer()
    _append(document, users["olga"], writer.paragraph("v1"))
    client = Client()
    path = f"/api/docs/{document.id}/versions"
    made = _call(client, "POST", path, users["ed"], {"seq": 1, "label": " sent to client "})
    assert made.status_code == 201
    assert made.json()["label"] == "sent to client" and made.json()["created_by"] == "ed"
    listed = _call(client, "GET", path, users["vi"]).json()
    assert [(v["seq"], v["label"]) for v in listed] == [(1, "sent to client")]
    content = _call(client, "GET", f"/api/docs/{document.id}/content?at=1&format=text", users["vi"])
    assert content.json()["content"] == "v1"
    assert _call(client, "POST", path, users["ed"], {"seq": 7, "label": "x"}).status_code == 400
    assert _call(client, "POST", path, users["ed"], {"seq": 1, "label": ""}).status_code == 400


def test_attribution_and_diff_name_the_server_stamped_authors() -> None:
    users = _users()
    document = _document(users)
    olga, ed = Writer(), Writer()
    seq = _append(document, users["olga"], olga.paragraph("hello world"))
    ed.doc.apply_update(olga.doc.get_update())
    _append(document, users["ed"], ed.type(5, " there"))
    olga.doc.apply_update(ed.doc.get_update())
    node = olga.fragment.children[0].children[0]
    assert isinstance(node, XmlText)
    before = olga.doc.get_state()
    del node[0:5]  # olga deletes "hello"
    head = _append(document, users["olga"], olga.doc.get_update(before))
    client = Client()
    base = f"/api/docs/{document.id}"

    at_head = _call(client, "GET", f"{base}/attribution", users["vi"]).json()
    assert at_head["seq"] == head and at_head["text"] == " there world"
    assert at_head["runs"] == [
        {"author": "ed", "text": " there"},
        {"author": "olga", "text": " world"},
    ]
    assert at_head["authors"] == [{"author": "ed", "chars": 6}, {"author": "olga", "chars": 6}]
    at_seq = _call(client, "GET", f"{base}/attribution?at={seq}", users["vi"]).json()
    assert at_seq["runs"] == [{"author": "olga", "text": "hello world"}]

    diff = _call(client, "GET", f"{base}/diff?from={seq}", users["vi"]).json()
    assert diff["from"] == seq and diff["to"] == head
    assert [(c["op"], c["text"], c["author"]) for c in diff["changes"]] == [
        ("delete", "hello", "olga"),
        ("insert", " there", "ed"),
        ("equal", " world", None),
    ]
    assert diff["changes"][0]["seq"] == head and diff["changes"][1]["seq"] == head - 1
    for bad in (f"diff?from={head}&to={seq}", f"diff?from={head + 1}", "attribution?at=9"):
        response = _call(client, "GET", f"{base}/{bad}", users["vi"])
        assert response.status_code == 400, bad
    assert _call(client, "GET", f"{base}/diff", users["vi"]).status_code == 400  # from is needed


def test_long_replays_are_capped_and_their_results_kept(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.PALIMPSEST_HISTORY_REPLAYS = 1
    users = _users()
    document = _document(users)
    writer = Writer()
    _append(document, users["olga"], writer.paragraph("one"))
    _append(document, users["ed"], writer.type(3, " two"))
    _append(document, users["olga"], writer.type(7, " three"))
    client = Client()
    base = f"/api/docs/{document.id}"
    assert _call(client, "GET", f"{base}/attribution?at=1", users["vi"]).status_code == 200

    import events.history

    entered, release = threading.Event(), threading.Event()
    original = events.history.replay_at

    def slow_attribute(*args: Any, **kwargs: Any) -> Any:
        entered.set()
        release.wait(10)
        return original(*args, **kwargs)

    monkeypatch.setattr(events.history, "replay_at", slow_attribute)
    done: list[Any] = []

    def hold_the_slot() -> None:
        try:
            done.append(events.history.document_attribution(document_id=document.id, at_seq=2))
        finally:
            connections.close_all()

    holder = threading.Thread(target=hold_the_slot)
    holder.start()
    try:
        assert entered.wait(10)
        busy = _call(client, "GET", f"{base}/attribution?at=3", users["vi"])
        assert busy.status_code == 429 and int(busy["Retry-After"]) > 0
        assert "busy" in busy.json()["detail"]
        assert _call(client, "GET", f"{base}/diff?from=0&to=3", users["vi"]).status_code == 429
        kept = _call(client, "GET", f"{base}/attribution?at=1", users["vi"])
        assert kept.status_code == 200 and kept.json()["text"] == "one"
        admin = Client()
        admin.force_login(get_user_model().objects.create_superuser(username="ada"))
        page = admin.get(f"/admin/collab/document/{document.id}/edits/?seq=3&authors=1")
        assert page.status_code == 200 and "busy replaying" in page.content.decode()
    finally:
        release.set()
        holder.join()
    assert done and done[0].text == "one two"
    free = _call(client, "GET", f"{base}/attribution?at=3", users["vi"])
    assert free.status_code == 200 and free.json()["text"] == "one two three"


@pytest.mark.parametrize(
    ("method", "endpoint", "body", "allowed"),
    [
        ("GET", "", None, {"olga", "ed", "vi"}),
        ("PATCH", "", {"title": "Renamed"}, {"olga", "ed"}),
        ("GET", "members", None, {"olga", "ed", "vi"}),
        ("POST", "members", {"username": "vi", "role": "editor"}, {"olga"}),
        ("DELETE", "members/vi", None, {"olga"}),
        ("POST", "exports", {"format": "pdf"}, {"olga", "ed", "vi"}),
        ("GET", "history", None, {"olga", "ed", "vi"}),
        ("GET", "content?at=1", None, {"olga", "ed", "vi"}),
        ("GET", "state?at=1", None, {"olga", "ed", "vi"}),
        ("GET", "authors", None, {"olga", "ed", "vi"}),
        ("GET", "versions", None, {"olga", "ed", "vi"}),
        ("GET", "attribution?at=1", None, {"olga", "ed", "vi"}),
        ("GET", "diff?from=0&to=1", None, {"olga", "ed", "vi"}),
        ("POST", "versions", {"seq": 1, "label": "x"}, {"olga", "ed"}),
        ("POST", "restore", {"seq": 0}, {"olga", "ed"}),
    ],
)
def test_who_may_use_each_document_endpoint(
    method: str, endpoint: str, body: Any, allowed: set[str]
) -> None:
    """owner, editor, viewer, stranger, staff allowed to change any document (an operator in
    the admin only: over the API, a stranger), and anonymous; each on a fresh document."""
    users = _users()
    staff = get_user_model().objects.create_user(username="sam", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="change_document"))
    users["sam"] = get_user_model().objects.get(pk=staff.pk)  # permissions are cached per object
    client = Client()
    for name, user in [*users.items(), ("anonymous", None)]:
        document = _document(users)
        _append(document, users["olga"], Writer().paragraph("secret"))
        path = f"/api/docs/{document.id}" + (f"/{endpoint}" if endpoint else "")
        status = _call(client, method, path, user, body).status_code
        if name in allowed:
            assert status in (200, 201, 202, 204), (name, status)
        elif name == "anonymous":
            assert status == 401, (name, status)
        elif name in ("eve", "sam"):
            assert status == 404, (name, status)  # strangers can't tell it exists
        else:
            assert status == 403, (name, status)
        # Nobody but the allowed restored anything.
        restores = Event.objects.filter(document=document, kind=EventKind.RESTORE).count()
        assert restores <= (1 if name in allowed else 0)


def test_checkpoints_fill_the_plan_and_prune_all_else_but_the_newest(settings: Any) -> None:
    settings.PALIMPSEST_CHECKPOINT_MIN_EVENTS = settings.PALIMPSEST_CHECKPOINT_MAX_EVENTS = 10
    users = _users()
    document = _document(users)
    writer = Writer()
    _append(document, users["olga"], writer.paragraph(""))
    for _ in range(34):
        _append(document, users["ed"], writer.type(0, "x"))
    assert snapshot_compact(document_id=document.id, upto_seq=15) is not None
    assert snapshot_compact(document_id=document.id, upto_seq=33) is not None
    assert checkpoints_fill(document_id=document.id) == 3
    # 15 was off the plan; 33 is the newest, which rooms load from.
    assert sorted(Snapshot.objects.values_list("upto_seq", flat=True)) == [10, 20, 30, 33]


def test_checkpoints_are_spaced_by_their_size(settings: Any) -> None:
    settings.PALIMPSEST_CHECKPOINT_BYTES_PER_EVENT = 8
    settings.PALIMPSEST_CHECKPOINT_MIN_EVENTS = 256
    settings.PALIMPSEST_CHECKPOINT_MAX_EVENTS = 8192
    assert checkpoint_gap(0) == 256  # a small document's are not worth a row
    assert checkpoint_gap(40_000) == 5_000  # 40 kB, at 8 bytes per event
    assert checkpoint_gap(400_000) == 8192  # a read never folds more
