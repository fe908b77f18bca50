"""Export endpoints: thin views over tasks.services (mounted on the project's API)."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from django.http import HttpRequest
from ninja import Router, Schema
from ninja.responses import Status
from pydantic import Field

from collab.http import ErrorOut, attachment, caller
from collab.permissions import Action, document_role, role_may
from collab.services import NotFound
from tasks import services
from tasks.models import Export, ExportStatus

router = Router(tags=["exports"])


class ExportIn(Schema):
    """What to export: the latest version, or the document right after event `at`."""

    format: Literal["pdf"] = "pdf"
    at: int | None = Field(default=None, ge=0)


class ExportOut(Schema):
    """An export's status; `download_url` is set once it is done."""

    id: uuid.UUID
    document: uuid.UUID
    format: str
    at: int
    status: str
    progress: int
    stage: str
    error: str
    attempts: int
    size: int
    # The file's SHA-256 (hex) once it is done: what `verify_export` checks a copy against.
    sha256: str | None
    download_url: str | None
    created_at: str
    finished_at: str | None
    expires_at: str | None


def _readable_export(request: HttpRequest, export_id: str) -> Export:
    """An export of a document the caller may read, or 404."""
    try:
        pk = uuid.UUID(export_id)
    except ValueError as exc:
        raise NotFound("no such export") from exc
    export = Export.objects.filter(pk=pk).first()
    user = caller(request)
    if export is None or not role_may(
        document_role(user=user, document_id=export.document_id), Action.READ
    ):
        raise NotFound("no such export")
    return export


@router.post(
    "/docs/{doc_id}/exports",
    response={202: ExportOut, 400: ErrorOut, 401: ErrorOut, 404: ErrorOut, 429: ErrorOut},
)
def start_export(request: HttpRequest, doc_id: str, body: ExportIn) -> Status[dict[str, Any]]:
    """Start a PDF export of the document (now, or as it was after event `at`)."""
    try:
        export = services.export_request(
            user=caller(request),
            document_id=doc_id,
            at_seq=body.at,
        )
    except services.TooManyExports:
        raise  # 429 with Retry-After (collab/http.py)
    except ValueError as exc:
        return Status(400, {"detail": str(exc)})
    return Status(202, services.export_public(export))


@router.get("/exports/{export_id}", response={200: ExportOut, 401: ErrorOut, 404: ErrorOut})
def show_export(request: HttpRequest, export_id: str) -> dict[str, Any]:
    """An export's status and progress."""
    return services.export_public(_readable_export(request, export_id))


@router.get(
    "/exports/{export_id}/file",
    response={200: None, 401: ErrorOut, 404: ErrorOut, 409: ErrorOut, 410: ErrorOut},
)
def download_export(request: HttpRequest, export_id: str) -> Any:
    """The finished PDF, for anyone who may read the document."""
    export = _readable_export(request, export_id)
    if export.status == ExportStatus.EXPIRED:
        return Status(410, {"detail": "this export has expired; export again"})
    if export.status != ExportStatus.DONE or not export.file.name:
        return Status(409, {"detail": f"the export is {export.status}, not done"})
    return attachment(
        export.file, filename=services.export_filename(export), content_type="application/pdf"
    )
