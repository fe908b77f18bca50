"""History endpoints: thin views over events.history and events.restore (mounted on the
project's API).

Members read history; owners and editors restore and name versions. Strangers get 404, as
for every document endpoint.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from django.http import HttpRequest, HttpResponse
from ninja import Query, Router, Schema
from ninja.responses import Status
from pydantic import Field

from collab.http import ErrorOut, caller, readable_document
from collab.limits import LABEL_MAX
from collab.text import PrintableStr
from events import history
from events.authors import document_authors
from events.restore import document_restore, version_create
from events.selectors import document_head

router = Router(tags=["history"])


class HistoryEventOut(Schema):
    """One event: who, when, how big, what kind."""

    seq: int
    actor: str | None
    created_at: datetime
    size: int
    kind: str


class HistoryOut(Schema):
    """A page of events; ask again with `after=next_after` while it is not null."""

    events: list[HistoryEventOut]
    head: int
    next_after: int | None


class HistoryQuery(Schema):
    """Which page."""

    after: int = Field(default=0, ge=0)
    limit: int = Field(default=100, ge=1, le=history.HISTORY_PAGE_MAX)


class ContentQuery(Schema):
    """Which version and how."""

    at: int | None = Field(default=None, ge=0)
    format: Literal["html", "text"] = "html"


class ContentOut(Schema):
    """The document right after event `seq`."""

    seq: int
    format: str
    content: str


class AttributionQuery(Schema):
    """Which version."""

    at: int | None = Field(default=None, ge=0)


class RunOut(Schema):
    """Consecutive text by one author (null: a block separator or a deleted account)."""

    author: str | None
    text: str


class AuthorOut(Schema):
    """How many characters of the text an author inserted."""

    author: str | None
    chars: int


class AttributionOut(Schema):
    """Who wrote each part of the document right after event `seq`."""

    seq: int
    text: str
    runs: list[RunOut]
    authors: list[AuthorOut]


class DiffQuery(Schema):
    """The two versions to compare."""

    from_: int = Field(ge=0, alias="from")
    to: int | None = Field(default=None, ge=0)


class ChangeOut(Schema):
    """Inserted, deleted or kept text; the author inserted or deleted it; `seq` is the newest
    event among its characters."""

    op: Literal["insert", "delete", "equal"]
    text: str
    author: str | None
    seq: int | None


class DiffOut(Schema):
    """The changes, in document order, from the document after `from` to the one after `to`."""

    from_: int = Field(alias="from")
    to: int
    changes: list[ChangeOut]


class RestoreIn(Schema):
    """The seq whose version to bring back."""

    seq: int = Field(ge=0)


class RestoreOut(Schema):
    """The event the restore appended (null: the content already was that version)."""

    seq: int | None
    restored_to: int


class VersionIn(Schema):
    """Name the document as it was after `seq`."""

    seq: int = Field(ge=0)
    label: PrintableStr = Field(min_length=1, max_length=LABEL_MAX)


class VersionOut(Schema):
    """A named version."""

    id: int
    seq: int
    label: str
    created_by: str | None
    created_at: datetime


def _version_out(version: Any) -> dict[str, Any]:
    """A version's public shape."""
    return {
        "id": version.pk,
        "seq": version.seq,
        "label": version.label,
        "created_by": version.created_by.get_username() if version.created_by else None,
        "created_at": version.created_at,
    }


@router.get(
    "/docs/{doc_id}/history",
    response={200: HistoryOut, 400: ErrorOut, 401: ErrorOut, 404: ErrorOut},
)
def list_history(request: HttpRequest, doc_id: str, query: Query[HistoryQuery]) -> dict[str, Any]:
    """The document's events, oldest first, a page at a time."""
    document, _ = readable_document(request, doc_id)
    events = history.document_history(document_id=document.id, after=query.after, limit=query.limit)
    head = document_head(document_id=document.id)
    last = events[-1].seq if events else query.after
    return {
        "events": [_entry(e) for e in events],
        "head": head,
        "next_after": last if last < head else None,
    }


def _entry(entry: history.HistoryEntry) -> dict[str, Any]:
    """A history entry's public shape."""
    return {
        "seq": entry.seq,
        "actor": entry.actor,
        "created_at": entry.created_at,
        "size": entry.size,
        "kind": entry.kind,
    }


@router.get(
    "/docs/{doc_id}/content",
    response={200: ContentOut, 400: ErrorOut, 401: ErrorOut, 404: ErrorOut},
)
def show_content(
    request: HttpRequest, doc_id: str, query: Query[ContentQuery]
) -> Status[dict[str, Any]]:
    """The document right after event `at` (default: now), as HTML or plain text."""
    document, _ = readable_document(request, doc_id)
    content = history.document_content(document_id=document.id, at_seq=query.at)
    body = content.html if query.format == "html" else content.text
    return Status(200, {"seq": content.seq, "format": query.format, "content": body})


class ClientAuthorSchema(Schema):
    """A Yjs client id written under in the document, the account the server stamped on its
    writes (null: the account was deleted) and that account's caret colour."""

    client_id: int
    author: str | None
    color: str


@router.get(
    "/docs/{doc_id}/authors",
    response={200: list[ClientAuthorSchema], 401: ErrorOut, 404: ErrorOut},
)
def list_authors(request: HttpRequest, doc_id: str) -> list[dict[str, Any]]:
    """Who writes under each Yjs client id of the document (members only)."""
    document, _ = readable_document(request, doc_id)
    return [
        {"client_id": a.client_id, "author": a.author, "color": a.color}
        for a in document_authors(document_id=document.id)
    ]


class StateQuery(Schema):
    """Which version."""

    at: int | None = Field(default=None, ge=0)


@router.get(
    "/docs/{doc_id}/state",
    response={200: None, 400: ErrorOut, 401: ErrorOut, 404: ErrorOut},
    openapi_extra={
        "responses": {200: {"content": {"application/octet-stream": {}}}},
    },
)
def show_state(request: HttpRequest, doc_id: str, query: Query[StateQuery]) -> HttpResponse:
    """The document right after event `at` (default: now) as one Yjs update (binary), for
    a read-only editor; `X-Seq` says which event, `X-Head` the latest."""
    document, _ = readable_document(request, doc_id)
    state = history.document_state(document_id=document.id, at_seq=query.at)
    response = HttpResponse(state.update, content_type="application/octet-stream")
    response["X-Seq"] = str(state.seq)
    response["X-Head"] = str(state.head)
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response


@router.get(
    "/docs/{doc_id}/attribution",
    response={200: AttributionOut, 400: ErrorOut, 401: ErrorOut, 404: ErrorOut, 429: ErrorOut},
)
def show_attribution(
    request: HttpRequest, doc_id: str, query: Query[AttributionQuery]
) -> Status[dict[str, Any]]:
    """Who wrote each part of the document right after event `at` (default: now)."""
    document, _ = readable_document(request, doc_id)
    result = history.document_attribution(document_id=document.id, at_seq=query.at)
    return Status(
        200,
        {
            "seq": result.seq,
            "text": result.text,
            "runs": [{"author": a, "text": t} for a, t in result.runs],
            "authors": [{"author": a, "chars": n} for a, n in result.authors],
        },
    )


@router.get(
    "/docs/{doc_id}/diff",
    response={200: DiffOut, 400: ErrorOut, 401: ErrorOut, 404: ErrorOut, 429: ErrorOut},
    by_alias=True,
)
def show_diff(request: HttpRequest, doc_id: str, query: Query[DiffQuery]) -> Status[Any]:
    """Inserted and deleted text, with authors, from the document after `from` to after `to`
    (default: now)."""
    document, _ = readable_document(request, doc_id)
    to = query.to if query.to is not None else document_head(document_id=document.id)
    try:
        changes = history.document_diff(document_id=document.id, from_seq=query.from_, to_seq=to)
    except ValueError as exc:  # NoSuchSeq included
        return Status(400, {"detail": str(exc)})
    return Status(
        200,
        {
            "from": query.from_,
            "to": to,
            "changes": [
                {"op": c.op, "text": c.text, "author": c.author, "seq": c.seq} for c in changes
            ],
        },
    )


@router.post(
    "/docs/{doc_id}/restore",
    response={
        200: RestoreOut,
        201: RestoreOut,
        400: ErrorOut,
        401: ErrorOut,
        403: ErrorOut,
        404: ErrorOut,
    },
)
def restore(request: HttpRequest, doc_id: str, body: RestoreIn) -> Status[dict[str, Any]]:
    """Bring the document back to how it was after `seq`, as a new event; nothing is erased."""
    document, _ = readable_document(request, doc_id)
    seq = document_restore(document=document, by=caller(request), seq=body.seq)
    # 200: nothing was appended, the document already is as it was then.
    return Status(201 if seq is not None else 200, {"seq": seq, "restored_to": body.seq})


@router.get(
    "/docs/{doc_id}/versions", response={200: list[VersionOut], 401: ErrorOut, 404: ErrorOut}
)
def list_versions(request: HttpRequest, doc_id: str) -> list[dict[str, Any]]:
    """The document's named versions, oldest seq first."""
    document, _ = readable_document(request, doc_id)
    return [_version_out(v) for v in history.document_versions(document_id=document.id)]


@router.post(
    "/docs/{doc_id}/versions",
    response={201: VersionOut, 400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut},
)
def create_version(request: HttpRequest, doc_id: str, body: VersionIn) -> Status[dict[str, Any]]:
    """Name a version ("sent to client"); owners and editors may."""
    document, _ = readable_document(request, doc_id)
    try:
        version = version_create(
            document=document,
            by=caller(request),
            seq=body.seq,
            label=body.label,
        )
    except ValueError as exc:  # NoSuchSeq included
        return Status(400, {"detail": str(exc)})
    return Status(201, _version_out(version))
