"""Document, member and token endpoints: thin views over services and selectors (mounted on
the project's API in collab/urls.py)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from django.http import HttpRequest
from ninja import Router, Schema
from ninja.responses import Status
from pydantic import Field

from collab import selectors, services
from collab.http import ErrorOut, caller, readable_document
from collab.limits import TITLE_MAX, USERNAME_MAX
from collab.models import Document
from collab.permissions import Action, check
from collab.text import PrintableStr

router = Router(tags=["documents"])


class DocumentIn(Schema):
    """A new document."""

    title: PrintableStr = Field(min_length=1, max_length=TITLE_MAX)


class DocumentOut(Schema):
    """A document as its members see it."""

    id: uuid.UUID
    title: str
    owner: str
    role: str
    created_at: datetime
    updated_at: datetime


class MemberIn(Schema):
    """Share a document with a user."""

    username: PrintableStr = Field(min_length=1, max_length=USERNAME_MAX)
    role: Literal["editor", "viewer"]


class MemberOut(Schema):
    """A user's role on a document."""

    username: str
    role: str


class TokenOut(Schema):
    """One of the caller's API tokens; the token itself is shown only when it is made."""

    id: int
    prefix: str
    created_at: datetime
    last_used_at: datetime | None


def _out(document: Document, role: str) -> dict[str, Any]:
    """A document's public shape."""
    return {
        "id": document.id,
        "title": document.title,
        "owner": document.owner.get_username(),
        "role": role,
        "created_at": document.created_at,
        "updated_at": document.updated_at,
    }


@router.post("/docs", response={201: DocumentOut, 400: ErrorOut, 401: ErrorOut})
def create_document(request: HttpRequest, body: DocumentIn) -> Status[dict[str, Any]]:
    """Create a document; the caller becomes its owner."""
    document = services.document_create(owner=caller(request), title=body.title)
    return Status(201, _out(document, "owner"))


@router.get("/docs", response={200: list[DocumentOut], 401: ErrorOut})
def list_documents(request: HttpRequest) -> list[dict[str, Any]]:
    """Documents the caller may read."""
    user = caller(request)
    documents = selectors.document_list(user=user).prefetch_related("memberships")
    return [
        _out(d, next(m.role for m in d.memberships.all() if m.user_id == user.pk))
        for d in documents
    ]


@router.get("/docs/{doc_id}", response={200: DocumentOut, 401: ErrorOut, 404: ErrorOut})
def show_document(request: HttpRequest, doc_id: str) -> dict[str, Any]:
    """One document the caller may read."""
    document, role = readable_document(request, doc_id)
    return _out(document, role)


@router.patch(
    "/docs/{doc_id}",
    response={200: DocumentOut, 400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut},
)
def rename_document(request: HttpRequest, doc_id: str, body: DocumentIn) -> Status[dict[str, Any]]:
    """The owner or an editor renames the document."""
    document, role = readable_document(request, doc_id)
    try:
        services.document_rename(document=document, by=caller(request), title=body.title)
    except ValueError as exc:
        return Status(400, {"detail": str(exc)})
    return Status(200, _out(document, role))


@router.post(
    "/docs/{doc_id}/members",
    response={201: MemberOut, 400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut},
)
def add_member(request: HttpRequest, doc_id: str, body: MemberIn) -> Status[dict[str, Any]]:
    """The owner shares the document with a user as editor or viewer."""
    document, _ = readable_document(request, doc_id)
    # Before the user lookup: a member who is not the owner learns nothing about usernames.
    check(user=caller(request), document_id=document.id, action=Action.SHARE)
    user = selectors.user_by_username(username=body.username)
    if user is None:
        return Status(400, {"detail": f"no user named {body.username!r}"})
    try:
        membership = services.member_add(
            document=document, by=caller(request), user=user, role=body.role
        )
    except ValueError as exc:
        return Status(400, {"detail": str(exc)})
    return Status(201, {"username": user.get_username(), "role": membership.role})


@router.delete(
    "/docs/{doc_id}/members/{username}",
    response={204: None, 400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut},
)
def remove_member(request: HttpRequest, doc_id: str, username: str) -> Status[Any]:
    """The owner unshares the document; the member's open sockets close (4403)."""
    document, _ = readable_document(request, doc_id)
    check(user=caller(request), document_id=document.id, action=Action.SHARE)
    user = selectors.user_by_username(username=username)
    if user is None:
        raise services.NotFound(f"{username} is not a member of this document")
    try:
        services.member_remove(document=document, by=caller(request), user=user)
    except ValueError as exc:
        return Status(400, {"detail": str(exc)})
    return Status(204, None)


@router.get(
    "/docs/{doc_id}/members",
    response={200: list[MemberOut], 401: ErrorOut, 404: ErrorOut},
)
def list_members(request: HttpRequest, doc_id: str) -> list[dict[str, Any]]:
    """Who may use the document, and how."""
    document, _ = readable_document(request, doc_id)
    return [
        {"username": m.user.get_username(), "role": m.role}
        for m in selectors.document_members(document=document)
    ]


@router.get("/tokens", response={200: list[TokenOut], 401: ErrorOut})
def list_tokens(request: HttpRequest) -> list[Any]:
    """The caller's own API tokens."""
    return list(selectors.token_list(user=caller(request)))


@router.delete("/tokens/{token_id}", response={204: None, 401: ErrorOut, 404: ErrorOut})
def revoke_token(request: HttpRequest, token_id: int) -> Status[None]:
    """Revoke one of the caller's own tokens; sockets it opened close (4403)."""
    services.token_revoke(user=caller(request), token_id=token_id)
    return Status(204, None)
