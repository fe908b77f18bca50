"""The HTTP API: create, list, show, share, with the right errors; the token command."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client

from collab.models import ApiToken
from collab.services import token_issue

pytestmark = pytest.mark.django_db


def _user(name: str) -> tuple[Any, dict[str, str]]:
    user = get_user_model().objects.create_user(username=name, password="pw")
    return user, {"HTTP_AUTHORIZATION": f"Bearer {token_issue(user=user)}"}


def _post(client: Client, path: str, body: Any, auth: dict[str, str]) -> Any:
    data = body if isinstance(body, str) else json.dumps(body)
    return client.post(path, data, content_type="application/json", **auth)


def test_create_list_show_and_share() -> None:
    client = Client()
    _, owner = _user("olga")
    _, editor = _user("ed")
    created = _post(client, "/api/docs", {"title": "Plan"}, owner)
    assert created.status_code == 201
    doc = created.json()
    assert doc["title"] == "Plan" and doc["role"] == "owner" and doc["owner"] == "olga"

    assert client.get("/api/docs", **editor).json() == []
    shared = _post(
        client, f"/api/docs/{doc['id']}/members", {"username": "ed", "role": "editor"}, owner
    )
    assert shared.status_code == 201
    listed = client.get("/api/docs", **editor).json()
    assert [(d["id"], d["role"]) for d in listed] == [(doc["id"], "editor")]
    shown = client.get(f"/api/docs/{doc['id']}", **editor)
    assert shown.status_code == 200 and shown.json()["title"] == "Plan"
    members = client.get(f"/api/docs/{doc['id']}/members", **editor).json()
    assert {(m["username"], m["role"]) for m in members} == {("olga", "owner"), ("ed", "editor")}


def test_errors_are_json_with_the_right_status() -> None:
    client = Client()
    _, owner = _user("olga")
    _, editor = _user("ed")
    _, stranger = _user("sam")
    doc = _post(client, "/api/docs", {"title": "Plan"}, owner).json()
    members = f"/api/docs/{doc['id']}/members"
    _post(client, members, {"username": "ed", "role": "editor"}, owner)

    cases = [
        (_post(client, "/api/docs", {"title": ""}, owner), 400),
        (_post(client, "/api/docs", "{not json", owner), 400),
        (_post(client, "/api/docs", {"title": "x" * 201}, owner), 400),
        (client.get("/api/docs"), 401),
        (client.get("/api/docs", HTTP_AUTHORIZATION="Bearer wrong"), 401),
        (client.get(f"/api/docs/{doc['id']}", **stranger), 404),
        (client.get("/api/docs/not-a-uuid", **owner), 404),
        (_post(client, members, {"username": "sam", "role": "viewer"}, editor), 403),
        (_post(client, members, {"username": "sam", "role": "viewer"}, stranger), 404),
        (_post(client, members, {"username": "sam", "role": "owner"}, owner), 400),
        (_post(client, members, {"username": "nobody", "role": "viewer"}, owner), 400),
        (_post(client, members, {"username": "olga", "role": "viewer"}, owner), 400),
    ]
    for response, status in cases:
        assert response.status_code == status, response.content
        assert "detail" in response.json()


def test_session_auth_needs_csrf_for_writes() -> None:
    client = Client(enforce_csrf_checks=True)
    get_user_model().objects.create_user(username="bea", password="pw")
    assert client.login(username="bea", password="pw")
    assert client.get("/api/docs").status_code == 200
    response = client.post("/api/docs", json.dumps({"title": "x"}), content_type="application/json")
    assert response.status_code in (401, 403)


def test_openapi_schema_is_served() -> None:
    schema = Client().get("/api/openapi.json").json()
    assert "/api/docs" in schema["paths"]
    assert "/api/docs/{doc_id}/members" in schema["paths"]


def test_issue_token_prints_a_working_token() -> None:
    out = StringIO()
    call_command("issue_token", "newbie", "--create", stdout=out)
    token = out.getvalue().strip()
    response = Client().get("/api/docs", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200
    with pytest.raises(CommandError):
        call_command("issue_token", "ghost", stdout=StringIO())


def test_token_last_used_is_kept_to_the_minute() -> None:
    user, auth = _user("olga")
    token = ApiToken.objects.get(user=user)
    assert token.last_used_at is None
    Client().get("/api/docs", **auth)
    token.refresh_from_db()
    first = token.last_used_at
    assert first is not None
    Client().get("/api/docs", **auth)
    token.refresh_from_db()
    assert token.last_used_at == first, "a second use within the minute writes nothing"
    ApiToken.objects.filter(pk=token.pk).update(last_used_at=first - timedelta(minutes=2))
    Client().get("/api/docs", **auth)
    token.refresh_from_db()
    assert token.last_used_at is not None and token.last_used_at > first


def test_pages_need_login() -> None:
    client = Client()
    assert client.get("/").status_code == 302
    get_user_model().objects.create_user(username="bea", password="pw")
    client.login(username="bea", password="pw")
    assert client.get("/").status_code == 200


def test_unshare_is_the_owner_s_alone_and_names_no_stranger() -> None:
    client = Client()
    _, owner = _user("olga")
    _, editor = _user("ed")
    _, viewer = _user("vi")
    _, stranger = _user("stan")
    doc = _post(client, "/api/docs", {"title": "Plan"}, owner).json()
    members = f"/api/docs/{doc['id']}/members"
    for name, role in (("ed", "editor"), ("vi", "viewer")):
        assert _post(client, members, {"username": name, "role": role}, owner).status_code == 201
    # Only the owner; the others learn nothing about who exists, whatever the name.
    assert client.delete(f"{members}/vi", **editor).status_code == 403
    assert client.delete(f"{members}/nobody", **editor).status_code == 403
    assert (
        _post(client, members, {"username": "nobody", "role": "viewer"}, editor).status_code == 403
    )
    assert client.delete(f"{members}/vi", **stranger).status_code == 404
    assert client.delete(f"{members}/vi").status_code == 401
    assert client.delete(f"{members}/olga", **owner).status_code == 400
    assert client.delete(f"{members}/stan", **owner).status_code == 404
    assert client.delete(f"{members}/nobody", **owner).status_code == 404
    assert client.delete(f"{members}/vi", **owner).status_code == 204
    assert client.get(f"/api/docs/{doc['id']}", **viewer).status_code == 404
    assert {m["username"] for m in client.get(members, **owner).json()} == {"olga", "ed"}
    assert client.delete(f"{members}/vi", **owner).status_code == 404


@pytest.mark.parametrize("bad", ["\x00", "a\x07b", "tab\there", "\x9b", "\ud800"])
def test_control_characters_and_lone_surrogates_are_a_400_everywhere(bad: str) -> None:
    """NUL gave a 500 on PostgreSQL; every control character and lone surrogate is refused
    with a message before anything is stored or looked up (both backends run this)."""
    client = Client()
    _, owner = _user("olga")
    _user("vi")
    doc = _post(client, "/api/docs", {"title": "Plan"}, owner).json()
    base = f"/api/docs/{doc['id']}"
    body = json.dumps({"title": bad}, ensure_ascii=True)  # JSON's \\u escapes carry them all
    created = client.post("/api/docs", body, content_type="application/json", **owner)
    assert created.status_code == 400
    # Ours names the character; for a lone surrogate the JSON parser's own message comes first.
    assert ("control characters" if bad != "\ud800" else "unicode") in str(created.json())
    renamed = client.patch(base, body, content_type="application/json", **owner)
    assert renamed.status_code == 400
    share = json.dumps({"username": bad, "role": "viewer"}, ensure_ascii=True)
    assert (
        client.post(f"{base}/members", share, content_type="application/json", **owner).status_code
        == 400
    )
    label = json.dumps({"seq": 0, "label": bad}, ensure_ascii=True)
    assert (
        client.post(f"{base}/versions", label, content_type="application/json", **owner).status_code
        == 400
    )
    if bad != "\ud800":  # a URL path cannot carry a lone surrogate at all
        assert client.delete(f"{base}/members/{bad}", **owner).status_code == 404
    assert client.get(base, **owner).json()["title"] == "Plan"
    with pytest.raises(CommandError, match="control characters"):
        call_command("issue_token", f"eve{bad}", "--create", stdout=StringIO())
