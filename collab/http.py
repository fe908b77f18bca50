"""What every router and page shares: the caller, readable-document lookups, and errors as
responses (registered once on the project's API by collab/urls.py)."""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth.models import User
from django.db.models.fields.files import FieldFile
from django.http import FileResponse, HttpRequest, HttpResponse
from ninja import NinjaAPI, Schema
from ninja.errors import AuthenticationError, ValidationError

from collab import selectors
from collab.models import Document
from collab.permissions import Action, NotAllowed, NotFound, check
from events.history import NoSuchSeq
from events.replays import Busy
from tasks.services import TooManyExports


class ErrorOut(Schema):
    """An error."""

    detail: Any


def caller(request: HttpRequest) -> User:
    """The authenticated caller: the API's token or session user, or a page's user."""
    return getattr(request, "auth", None) or request.user  # type: ignore[return-value]


def readable_document(request: HttpRequest, doc_id: uuid.UUID | str) -> tuple[Document, str]:
    """A document the caller may read and their role; NotFound (404) for everyone else."""
    user = caller(request)
    role = check(user=user, document_id=doc_id, action=Action.READ)
    document = selectors.document_get(user=user, document_id=doc_id)
    if document is None or role is None:
        raise NotFound("no such document")
    return document, role


def attachment(file: FieldFile, *, filename: str, content_type: str) -> FileResponse:
    """A stored file as a download that browsers never sniff into something else."""
    response = FileResponse(
        file.open("rb"), as_attachment=True, filename=filename, content_type=content_type
    )
    response["X-Content-Type-Options"] = "nosniff"
    return response


def install_error_handlers(api: NinjaAPI) -> None:
    """Every error the API's services raise, as its status and `{"detail": ...}`."""

    def answer(status: int, detail: Any) -> Any:
        return lambda request, exc: api.create_response(
            request, {"detail": detail(exc)}, status=status
        )

    # A body or query that does not fit the schema: what was wrong.
    api.exception_handler(ValidationError)(answer(400, lambda exc: exc.errors))
    # A seq the document does not have (yet): the message names the range it has.
    api.exception_handler(NoSuchSeq)(answer(400, str))
    api.exception_handler(AuthenticationError)(answer(401, lambda exc: "authentication required"))
    # Known to the caller, but not theirs to change.
    api.exception_handler(NotAllowed)(answer(403, str))
    # Missing, or hidden from the caller.
    api.exception_handler(NotFound)(answer(404, str))

    def retry_later(request: HttpRequest, exc: Busy | TooManyExports) -> HttpResponse:
        """Not now (replays or exports at their bound): 429, and when to come back."""
        response = api.create_response(request, {"detail": str(exc)}, status=429)
        response["Retry-After"] = str(exc.retry_after_s)
        return response

    api.exception_handler(Busy)(retry_later)
    api.exception_handler(TooManyExports)(retry_later)
