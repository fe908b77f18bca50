"""HTTP API under /api/: thin views over services and selectors (django-ninja, OpenAPI)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI, Schema
from ninja.errors import AuthenticationError, ValidationError
from ninja.responses import Status
from ninja.security import HttpBearer, SessionAuth
from pydantic import Field

from collab import selectors, services
from collab.models import Document
from collab.permissions import Action, NotAllowed, check
from collab.text import PrintableStr


class BearerToken(HttpBearer):
    """`Authorization: Bearer TOKEN` for scripts and non-browser clients."""

    def authenticate(self, request: HttpRequest, token: str) -> User | None:
        """The token's user, or None."""
        user = selectors.user_for_token(token=token)
        if user is not None:
            request.user = user
        return user


api = NinjaAPI(
    title="Palimpsest API",
    version="1",
    auth=[BearerToken(), SessionAuth(csrf=True)],
    urls_namespace="api",
    # The schema is served at /api/openapi.json; ninja's docs page would shadow /api/docs and
    # loads its assets from a CDN, so it is off.
    docs_url=None,
)


@api.exception_handler(ValidationError)
def _bad_body(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    """A body or query that does not fit the schema is a 400, with what was wrong."""
    return api.create_response(request, {"detail": exc.errors}, status=400)


@api.exception_handler(AuthenticationError)
def _unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    """No valid token or session."""
    return api.create_response(request, {"detail": "authentication required"}, status=401)


@api.exception_handler(NotAllowed)
def _forbidden(request: HttpRequest, exc: NotAllowed) -> HttpResponse:
    """Known to the caller, but not theirs to change."""
    return api.create_response(request, {"detail": str(exc)}, status=403)


@api.exception_handler(services.NotFound)
def _not_found(request: HttpRequest, exc: services.NotFound) -> HttpResponse:
    """Missing, or hidden from the caller."""
    return api.create_response(request, {"detail": str(exc)}, status=404)


class DocumentIn(Schema):
    """A new document."""

    title: PrintableStr = Field(min_length=1, max_length=200)


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

    username: PrintableStr = Field(min_length=1, max_length=150)
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


class ErrorOut(Schema):
    """An error."""

    detail: Any


def _user(request: HttpRequest) -> User:
    """The authenticated caller."""
    return request.auth  # type: ignore[attr-defined]


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


def _readable(request: HttpRequest, doc_id: str) -> tuple[Document, str]:
    """A document the caller may read and their role, or 404."""
    user = _user(request)
    role = check(user=user, document_id=doc_id, action=Action.READ)
    document = selectors.document_get(user=user, document_id=doc_id)
    if document is None or role is None:
        raise services.NotFound("no such document")
    return document, role


@api.post("/docs", response={201: DocumentOut, 400: ErrorOut, 401: ErrorOut})
def create_document(request: HttpRequest, body: DocumentIn) -> Status[dict[str, Any]]:
    """Create a document; the caller becomes its owner."""
    document = services.document_create(owner=_user(request), title=body.title)
    return Status(201, _out(document, "owner"))


@api.get("/docs", response={200: list[DocumentOut], 401: ErrorOut})
def list_documents(request: HttpRequest) -> list[dict[str, Any]]:
    """Documents the caller may read."""
    user = _user(request)
    documents = selectors.document_list(user=user).prefetch_related("memberships")
    return [
        _out(d, next(m.role for m in d.memberships.all() if m.user_id == user.pk))
        for d in documents
    ]


@api.get("/docs/{doc_id}", response={200: DocumentOut, 401: ErrorOut, 404: ErrorOut})
def show_document(request: HttpRequest, doc_id: str) -> dict[str, Any]:
    """One document the caller may read."""
    document, role = _readable(request, doc_id)
    return _out(document, role)


@api.patch(
    "/docs/{doc_id}",
    response={200: DocumentOut, 400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut},
)
def rename_document(request: HttpRequest, doc_id: str, body: DocumentIn) -> Status[dict[str, Any]]:
    """The owner or an editor renames the document."""
    document, role = _readable(request, doc_id)
    try:
        services.document_rename(document=document, by=_user(request), title=body.title)
    except ValueError as exc:
        return Status(400, {"detail": str(exc)})
    return Status(200, _out(document, role))


@api.post(
    "/docs/{doc_id}/members",
    response={201: MemberOut, 400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut},
)
def add_member(request: HttpRequest, doc_id: str, body: MemberIn) -> Status[dict[str, Any]]:
    """The owner shares the document with a user as editor or viewer."""
    document, _ = _readable(request, doc_id)
    # Before the user lookup: a member who is not the owner learns nothing about usernames.
    check(user=_user(request), document_id=document.id, action=Action.SHARE)
    user = selectors.user_by_username(username=body.username)
    if user is None:
        return Status(400, {"detail": f"no user named {body.username!r}"})
    try:
        membership = services.member_add(
            document=document, by=_user(request), user=user, role=body.role
        )
    except ValueError as exc:
        return Status(400, {"detail": str(exc)})
    return Status(201, {"username": user.get_username(), "role": membership.role})


@api.delete(
    "/docs/{doc_id}/members/{username}",
    response={204: None, 400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut},
)
def remove_member(request: HttpRequest, doc_id: str, username: str) -> Status[Any]:
    """The owner unshares the document; the member's open sockets close (4403)."""
    document, _ = _readable(request, doc_id)
    check(user=_user(request), document_id=document.id, action=Action.SHARE)
    user = selectors.user_by_username(username=username)
    if user is None:
        raise services.NotFound(f"{username} is not a member of this document")
    try:
        services.member_remove(document=document, by=_user(request), user=user)
    except ValueError as exc:
        return Status(400, {"detail": str(exc)})
    return Status(204, None)


@api.get(
    "/docs/{doc_id}/members",
    response={200: list[MemberOut], 401: ErrorOut, 404: ErrorOut},
)
def list_members(request: HttpRequest, doc_id: str) -> list[dict[str, Any]]:
    """Who may use the document, and how."""
    document, _ = _readable(request, doc_id)
    return [
        {"username": m.user.get_username(), "role": m.role}
        for m in selectors.document_members(document=document)
    ]


@api.get("/tokens", response={200: list[TokenOut], 401: ErrorOut})
def list_tokens(request: HttpRequest) -> list[Any]:
    """The caller's own API tokens."""
    return list(selectors.token_list(user=_user(request)))


@api.delete("/tokens/{token_id}", response={204: None, 401: ErrorOut, 404: ErrorOut})
def revoke_token(request: HttpRequest, token_id: int) -> Status[None]:
    """Revoke one of the caller's own tokens; sockets it opened close (4403)."""
    services.token_revoke(user=_user(request), token_id=token_id)
    return Status(204, None)


def _retry_later(request: HttpRequest, exc: Any) -> HttpResponse:
    """Not now (replays or exports at their bound): 429, and when to come back."""
    response = api.create_response(request, {"detail": str(exc)}, status=429)
    response["Retry-After"] = str(exc.retry_after_s)
    return response


def _mount_routers() -> None:
    """Endpoints that live with their own app."""
    from events.api import no_such_seq
    from events.api import router as history_router
    from events.history import Busy, NoSuchSeq
    from tasks.api import router as exports_router
    from tasks.services import TooManyExports

    api.add_router("/", exports_router)
    api.add_router("/", history_router)
    api.exception_handler(Busy)(_retry_later)
    api.exception_handler(NoSuchSeq)(no_such_seq)
    api.exception_handler(TooManyExports)(_retry_later)


_mount_routers()
