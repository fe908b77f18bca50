"""The admin: the event log is read-only; a document's edit history page for staff only."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from collab.services import document_create
from events.history import document_bursts, document_content
from events.models import Event, EventKind
from tasks.models import Export
from tests.integration.test_history import Writer, _append

pytestmark = pytest.mark.django_db(transaction=True)


def _staff(name: str, *perms: str, superuser: bool = False) -> tuple[Any, Client]:
    model = get_user_model()
    if superuser:
        user = model.objects.create_superuser(username=name, password="pw")
    else:
        user = model.objects.create_user(username=name, password="pw", is_staff=True)
        for perm in perms:
            app, codename = perm.split(".")
            user.user_permissions.add(
                Permission.objects.get(content_type__app_label=app, codename=codename)
            )
    client = Client()
    client.force_login(user)
    return user, client


def _doc_with_edits() -> tuple[Any, Any]:
    owner = get_user_model().objects.create_user(username="olga")
    document = document_create(owner=owner, title="Minutes")
    writer = Writer()
    _append(document, owner, writer.paragraph("first"))
    _append(document, owner, writer.type(5, " draft"))
    _append(document, owner, writer.paragraph("second"))
    return document, owner


def test_only_staff_with_view_permission_see_the_history_page() -> None:
    document, owner = _doc_with_edits()
    path = f"/admin/collab/document/{document.id}/edits/"
    member = Client()
    member.force_login(owner)  # the owner, but not staff
    assert member.get(path).status_code == 302  # to the admin's login
    _, bare_staff = _staff("sam")
    assert bare_staff.get(path).status_code in (403, 404)
    _, viewer = _staff("vic", "collab.view_document")
    page = viewer.get(path)
    assert page.status_code == 200
    html = page.content.decode()
    assert "first draft" in html and "second" in html
    assert 'data-testid="timeline"' in html and "olga" in html
    assert 'data-testid="restore"' not in html  # viewing is not changing
    at1 = viewer.get(f"{path}?seq=1").content.decode()
    rendered = at1.split('data-testid="rendered"')[1].split("</div>")[0]
    assert "first" in rendered and "second" not in rendered


def test_restore_from_the_admin_needs_change_permission_and_confirmation() -> None:
    document, _ = _doc_with_edits()
    path = f"/admin/collab/document/{document.id}/edits/"
    _, viewer = _staff("vic", "collab.view_document")
    viewer.post(path, {"action": "restore", "seq": "1"})
    assert Event.objects.filter(document=document).count() == 3

    admin_user, admin = _staff("ada", superuser=True)
    confirm = admin.get(f"{path}?seq=1&confirm_restore=1").content.decode()
    assert 'data-testid="confirm-restore"' in confirm and "#4" in confirm
    response = admin.post(path, {"action": "restore", "seq": "1"})
    assert response.status_code == 302
    restore = Event.objects.get(document=document, seq=4)
    assert restore.kind == EventKind.RESTORE and restore.actor == admin_user
    assert document_content(document_id=document.id).text == "first"
    assert Event.objects.filter(document=document).count() == 4


def test_versions_and_exports_from_the_history_page() -> None:
    document, _ = _doc_with_edits()
    path = f"/admin/collab/document/{document.id}/edits/"
    _, admin = _staff("ada", superuser=True)
    admin.post(path, {"action": "version", "seq": "2", "label": "sent to client"})
    page = admin.get(path).content.decode()
    assert "sent to client" in page and "?seq=2" in page
    response = admin.post(path, {"action": "export", "seq": "2"})
    export = Export.objects.get()
    assert export.at_seq == 2
    assert response["Location"].endswith(f"/tasks/export/{export.pk}/change/")
    assert admin.post(path, {"action": "export", "seq": "99"}).status_code == 302
    assert Export.objects.count() == 1


def test_staff_who_may_only_change_documents_can_export_from_the_page() -> None:
    document, _ = _doc_with_edits()
    path = f"/admin/collab/document/{document.id}/edits/"
    _, changer = _staff("cy", "collab.change_document")  # the admin lets them see the page
    assert changer.get(path).status_code == 200
    response = changer.post(path, {"action": "export", "seq": "1"})
    export = Export.objects.get()
    assert export.at_seq == 1
    assert response["Location"].endswith(f"/tasks/export/{export.pk}/change/")


def test_the_event_log_cannot_be_changed_from_the_admin() -> None:
    document, _ = _doc_with_edits()
    event = Event.objects.get(document=document, seq=1)
    _, admin = _staff("ada", superuser=True)
    assert admin.get("/admin/events/event/").status_code == 200
    assert admin.get("/admin/events/event/add/").status_code == 403
    assert admin.post(f"/admin/events/event/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    change = admin.post(f"/admin/events/event/{event.pk}/change/", {"seq": "9"})
    assert change.status_code == 403
    assert Event.objects.filter(document=document).count() == 3
    assert Event.objects.get(pk=event.pk).seq == 1
    # Bulk delete from the list is not offered either.
    listing = admin.get("/admin/events/event/").content.decode()
    assert "delete_selected" not in listing
    # Each event's chain hash is shown, read-only, as verify_log would recompute it.
    shown = admin.get(f"/admin/events/event/{event.pk}/change/").content.decode()
    assert bytes(event.hash).hex() in shown
    assert bytes(event.hash).hex() in listing


def test_bursts_group_one_author_without_long_pauses() -> None:
    document, owner = _doc_with_edits()
    other = get_user_model().objects.create_user(username="bob")
    _append(document, other, Writer().paragraph("bob was here"))
    _append(document, owner, Writer().paragraph("later"))
    start = timezone.now()
    stamps = {1: 0, 2: 5, 3: 10, 4: 20, 5: 400}
    for seq, offset in stamps.items():
        Event.objects.filter(document=document, seq=seq).update(
            created_at=start + timedelta(seconds=offset)
        )
    bursts = document_bursts(document_id=document.id)
    assert [(b.actor, b.first_seq, b.last_seq, b.events) for b in bursts] == [
        ("olga", 5, 5, 1),
        ("bob", 4, 4, 1),
        ("olga", 1, 3, 3),
    ]


def test_history_page_shows_authors_on_request_and_an_authored_diff() -> None:
    document, _ = _doc_with_edits()
    bob = get_user_model().objects.create_user(username="bob")
    writer = Writer()
    for update in (e.update for e in Event.objects.filter(document=document).order_by("seq")):
        writer.doc.apply_update(bytes(update))
    _append(document, bob, writer.type(0, "the "))
    path = f"/admin/collab/document/{document.id}/edits/"
    _, viewer = _staff("vic", "collab.view_document")

    plain = viewer.get(path).content.decode()
    assert 'data-testid="show-authors"' in plain and 'data-testid="attribution"' not in plain
    page = viewer.get(f"{path}?seq=4&authors=1").content.decode()
    runs = page.split('data-testid="attribution"')[1].split("</div>")[0]
    assert 'title="bob">the </span>' in runs and 'title="olga">first draft</span>' in runs
    authors = page.split('data-testid="authors"')[1].split("</ul>")[0]
    assert "bob: 4 characters" in authors and "olga: 17 characters" in authors

    diff = viewer.get(f"{path}?from=2&to=4").content.decode().split('data-testid="diff"')[1]
    diff = diff.split("</div>")[0]
    assert "<ins" in diff and ">the </ins>" in diff and "+bob" in diff
    assert ">\n\nsecond</ins>" in diff and "+olga" in diff and "<del" not in diff
    backwards = viewer.get(f"{path}?from=4&to=2", follow=True).content.decode()
    assert 'data-testid="diff"' not in backwards and "the earlier one first" in backwards
