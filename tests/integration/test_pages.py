"""The browser pages: log in, list, create, rename, share; who may do what; the editor's config."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from collab.models import Document, Membership, Role
from collab.services import document_create, member_add, token_issue
from collab.sync.colors import author_color

pytestmark = pytest.mark.django_db

PASSWORD = "correct-horse-1"


def _client(name: str) -> tuple[Any, Client]:
    """A user and a browser logged in as them."""
    user = get_user_model().objects.create_user(username=name, password=PASSWORD)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return user, client


def _csrf(client: Client, path: str) -> str:
    """The CSRF token a page's forms carry."""
    page = client.get(path).content.decode()
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    assert match, "the page has no CSRF token"
    return match.group(1)


def _post(client: Client, path: str, data: dict[str, str], page: str = "/") -> Any:
    """Submit a form as the browser would, CSRF token included."""
    return client.post(path, {**data, "csrfmiddlewaretoken": _csrf(client, page)})


def _config(response: Any) -> dict[str, Any]:
    """The editor app's settings from the page."""
    page = response.content.decode()
    match = re.search(r"<script id=\"palimpsest-config\"[^>]*>(.*?)</script>", page)
    assert match, "no config on the editor page"
    return dict(json.loads(match.group(1)))


def test_anonymous_visitors_are_sent_to_log_in() -> None:
    owner = get_user_model().objects.create_user(username="olga", password=PASSWORD)
    document = document_create(owner=owner, title="Plan")
    client = Client()
    for path in ("/", f"/docs/{document.id}"):
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/?next=")
    assert client.post("/docs/new", {"title": "x"}).status_code in (302, 403)
    assert Document.objects.count() == 1


def test_log_in_and_out_through_the_forms() -> None:
    get_user_model().objects.create_user(username="olga", password=PASSWORD)
    client = Client(enforce_csrf_checks=True)
    token = _csrf(client, "/accounts/login/")
    wrong = client.post(
        "/accounts/login/",
        {"username": "olga", "password": "nope", "csrfmiddlewaretoken": token},
    )
    assert wrong.status_code == 200 and "enter a correct username and password" in (
        wrong.content.decode().lower()
    )
    response = client.post(
        "/accounts/login/",
        {"username": "olga", "password": PASSWORD, "csrfmiddlewaretoken": token},
    )
    assert response.status_code == 302 and response["Location"] == "/"
    assert 'data-testid="logout"' in client.get("/").content.decode()
    out = _post(client, "/accounts/logout/", {})
    assert out.status_code == 302 and out["Location"] == "/accounts/login/"
    assert client.get("/").status_code == 302


def test_create_from_the_list_opens_the_editor() -> None:
    user, client = _client("olga")
    response = _post(client, "/docs/new", {"title": "  Minutes  "})
    document = Document.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/docs/{document.id}"
    assert document.title == "Minutes" and document.owner == user
    listed = client.get("/").content.decode()
    assert "Minutes" in listed and f"/docs/{document.id}" in listed


def test_a_blank_title_creates_nothing_and_says_why() -> None:
    _, client = _client("olga")
    response = _post(client, "/docs/new", {"title": "   "})
    assert response.status_code == 302
    assert Document.objects.count() == 0
    assert "This field is required" in client.get("/").content.decode()


def test_forms_need_the_csrf_token() -> None:
    _, client = _client("olga")
    assert client.post("/docs/new", {"title": "Forged"}).status_code == 403
    assert Document.objects.count() == 0


def test_the_list_shows_mine_and_shared_only() -> None:
    olga, olga_client = _client("olga")
    bob, bob_client = _client("bob")
    _, eve_client = _client("eve")
    mine = document_create(owner=olga, title="Olga's")
    shared = document_create(owner=bob, title="Bob's shared")
    document_create(owner=bob, title="Bob's private")
    member_add(document=shared, by=bob, user=olga, role=Role.VIEWER)
    page = olga_client.get("/").content.decode()
    assert "Olga&#x27;s" in page and "Bob&#x27;s shared" in page
    assert "Bob&#x27;s private" not in page
    assert "Olga&#x27;s" not in eve_client.get("/").content.decode()
    assert bob_client.get(f"/docs/{mine.id}").status_code == 404


def test_the_editor_page_carries_what_the_app_needs_and_nothing_more() -> None:
    olga, client = _client("olga")
    document = document_create(owner=olga, title="</script><b>x")
    response = client.get(f"/docs/{document.id}")
    assert response.status_code == 200
    config = _config(response)
    assert config["document"] == str(document.id)
    assert config["role"] == "owner"
    assert config["user"] == {"id": olga.pk, "name": "olga", "color": author_color("olga")}
    assert config["title"] == "</script><b>x"  # json_script escapes it; the regex found the end
    assert config["paths"]["docs"] == "/ws/docs"
    assert config["paths"]["exports"] == f"/api/docs/{document.id}/exports"
    assert config["csrfToken"]
    page = response.content.decode()
    assert "<b>x" not in page
    assert 'data-testid="share"' in page and 'data-testid="rename"' in page
    assert "frontend/editor.js" in page


def test_viewers_get_a_read_only_page_without_rename_or_share() -> None:
    olga, _ = _client("olga")
    carol, client = _client("carol")
    document = document_create(owner=olga, title="Plan")
    member_add(document=document, by=olga, user=carol, role=Role.VIEWER)
    response = client.get(f"/docs/{document.id}")
    page = response.content.decode()
    assert _config(response)["role"] == "viewer"
    assert 'data-testid="rename"' not in page and 'data-testid="share"' not in page
    assert 'data-role="viewer"' in page


def test_rename_by_owner_and_editor_but_not_viewer_or_stranger() -> None:
    olga, olga_client = _client("olga")
    ed, ed_client = _client("ed")
    carol, carol_client = _client("carol")
    _, eve_client = _client("eve")
    document = document_create(owner=olga, title="Plan")
    member_add(document=document, by=olga, user=ed, role=Role.EDITOR)
    member_add(document=document, by=olga, user=carol, role=Role.VIEWER)
    page = f"/docs/{document.id}"
    rename = f"/docs/{document.id}/rename"

    assert _post(olga_client, rename, {"title": "Plan B"}, page).status_code == 302
    assert _post(ed_client, rename, {"title": "Plan C"}, page).status_code == 302
    document.refresh_from_db()
    assert document.title == "Plan C"

    assert _post(carol_client, rename, {"title": "Viewer was here"}, page).status_code == 302
    assert "only the owner and editors" in carol_client.get(page).content.decode()
    eve = eve_client.post(rename, {"title": "Stranger", "csrfmiddlewaretoken": "x"})
    assert eve.status_code in (403, 404)
    too_long = _post(olga_client, rename, {"title": "x" * 201}, page)
    assert too_long.status_code == 302
    document.refresh_from_db()
    assert document.title == "Plan C"


def test_share_by_owner_only_with_real_users() -> None:
    olga, olga_client = _client("olga")
    ed, ed_client = _client("ed")
    bob, _ = _client("bob")
    document = document_create(owner=olga, title="Plan")
    member_add(document=document, by=olga, user=ed, role=Role.EDITOR)
    page = f"/docs/{document.id}"
    share = f"/docs/{document.id}/members"

    _post(olga_client, share, {"username": "bob", "role": "viewer"}, page)
    assert Membership.objects.get(document=document, user=bob).role == "viewer"
    assert "Shared with bob as viewer" in olga_client.get(page).content.decode()
    _post(olga_client, share, {"username": "bob", "role": "editor"}, page)
    assert Membership.objects.get(document=document, user=bob).role == "editor"

    _post(olga_client, share, {"username": "nobody", "role": "viewer"}, page)
    assert "no user named" in olga_client.get(page).content.decode()
    _post(olga_client, share, {"username": "bob", "role": "owner"}, page)
    assert Membership.objects.get(document=document, user=bob).role == "editor"
    _post(olga_client, share, {"username": "olga", "role": "viewer"}, page)
    assert Membership.objects.get(document=document, user=olga).role == "owner"

    _post(ed_client, share, {"username": "bob", "role": "viewer"}, page)
    assert Membership.objects.get(document=document, user=bob).role == "editor"
    assert "only the owner may share" in ed_client.get(page).content.decode()


def test_api_rename_has_the_same_rules() -> None:
    olga = get_user_model().objects.create_user(username="olga")
    carol = get_user_model().objects.create_user(username="carol")
    eve = get_user_model().objects.create_user(username="eve")
    document = document_create(owner=olga, title="Plan")
    member_add(document=document, by=olga, user=carol, role=Role.VIEWER)
    client = Client()

    def patch(user: Any, body: Any) -> Any:
        return client.patch(
            f"/api/docs/{document.id}",
            json.dumps(body),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {token_issue(user=user)}",
        )

    ok = patch(olga, {"title": "Renamed"})
    assert ok.status_code == 200 and ok.json()["title"] == "Renamed"
    assert patch(carol, {"title": "No"}).status_code == 403
    assert patch(eve, {"title": "No"}).status_code == 404
    assert patch(olga, {"title": ""}).status_code == 400
    assert patch(olga, {"title": "   "}).status_code == 400
    document.refresh_from_db()
    assert document.title == "Renamed"


def test_forms_refuse_control_characters_with_a_message() -> None:
    olga, client = _client("olga")
    for bad in ("\x00", "a\x07b", "esc\x1b[31m"):
        response = _post(client, "/docs/new", {"title": bad})
        assert response.status_code == 302
        assert "control characters" in client.get("/").content.decode()
    assert not Document.objects.filter(owner=olga).exists()
    document = document_create(owner=olga, title="Plan")
    page = f"/docs/{document.id}"
    _post(client, f"{page}/members", {"username": "bo\x00b", "role": "viewer"}, page)
    assert "control characters" in client.get(page).content.decode()
