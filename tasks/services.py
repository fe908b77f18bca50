"""Exports and dead letters: the one place their state changes, and what announces it."""

from __future__ import annotations

import base64
import hashlib
import logging
import threading
import uuid
from datetime import timedelta
from functools import partial
from typing import Any

from celery import chain, current_app
from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone
from pycrdt import Doc

from collab.limits import (
    DEAD_LETTER_EXCEPTION_CHARS,
    DEAD_LETTER_TRACEBACK_CHARS,
    EXPORT_ERROR_CHARS,
    EXPORT_PROGRESS,
    FILENAME_TITLE_CHARS,
)
from collab.models import Document
from collab.notify import publish
from collab.permissions import Action, NotFound, check
from collab.sync.html import Stamp, document_html, document_text
from collab.sync.restore import content_doc
from events.integrity import ChainBroken, chain_hash_through, chain_verify
from events.selectors import document_head, document_replay
from tasks.models import DeadLetter, Export, ExportStatus, export_storage

logger = logging.getLogger(__name__)


class ExportFailed(Exception):
    """This export cannot succeed (retrying will not help); the message says why."""


def export_url(export: Export) -> str:
    """Where the finished file is downloaded."""
    return f"/api/exports/{export.id}/file"


def export_filename(export: Export) -> str:
    """The name a downloaded export is saved under: the title and the seq it shows."""
    return f"{export.document.title[:FILENAME_TITLE_CHARS] or 'document'}@{export.at_seq}.pdf"


def export_public(export: Export) -> dict[str, Any]:
    """An export as the API and notifications show it."""
    done = export.status == ExportStatus.DONE
    return {
        "id": str(export.id),
        "document": str(export.document_id),
        "format": export.format,
        "at": export.at_seq,
        "status": export.status,
        "progress": export.progress,
        "stage": export.stage,
        "error": export.error,
        "attempts": export.attempts,
        "size": export.size,
        "sha256": export.sha256 or None,
        "download_url": export_url(export) if done else None,
        "created_at": export.created_at.isoformat(),
        "finished_at": export.finished_at.isoformat() if export.finished_at else None,
        "expires_at": export.expires_at.isoformat() if export.expires_at else None,
    }


def _announce(export: Export, kind: str) -> None:
    """Tell the requester's sockets about the export after commit."""
    publish({"type": kind, "export": export_public(export)}, user_ids=[export.requested_by_id])


class TooManyExports(ValueError):
    """The user already has as many exports pending or running as they may."""

    # Seconds after which trying again is worth it: about one render.
    retry_after_s = 10


def export_request(
    *, user: User, document_id: uuid.UUID | str, at_seq: int | None, operator: bool = False
) -> Export:
    """Pin the seq and queue the export chain; readers of the document may export it.

    From the admin (`operator`), staff allowed to view or change documents (as the admin's
    own view permission reads) may export any of them.
    """
    check(user=user, document_id=document_id, action=Action.EXPORT, operator=operator)
    document = Document.objects.filter(pk=document_id).first()
    if document is None:
        raise NotFound("no such document")
    head = document_head(document_id=document.id)
    if at_seq is None:
        at_seq = head
    elif not 0 <= at_seq <= head:
        raise ValueError(f"at must be between 0 and {head}, the latest seq")
    with transaction.atomic():
        # The user's row, locked, serialises their concurrent requests for the count below.
        list(User.objects.select_for_update(no_key=True).filter(pk=user.pk).values_list("pk"))
        limit = settings.PALIMPSEST_EXPORTS_PER_USER
        unfinished = Export.objects.filter(
            requested_by=user, status__in=(ExportStatus.PENDING, ExportStatus.RUNNING)
        ).count()
        if unfinished >= limit:
            raise TooManyExports(
                f"you have {unfinished} exports in progress (at most {limit}); "
                "try again when one is done"
            )
        export = Export.objects.create(
            document=document, requested_by=user, at_seq=at_seq, stage=WAITING, turn=unfinished
        )
        # It waits its turn (exports_dispatch), which is decided once the row is committed.
        transaction.on_commit(exports_dispatch, robust=True)
    return export


# The stage of an export that waits for a free slot, and of one handed to the workers.
WAITING = "waiting for its turn"
STARTING = "starting"
# One dispatch at a time in this process (SQLite has no row locks; PostgreSQL's serialise
# dispatches from different processes).
_dispatching = threading.Lock()


def exports_dispatch() -> int:
    """Hand waiting exports to the workers while fewer than PALIMPSEST_EXPORTS_AT_ONCE run.

    Fairly: a free slot goes to the waiting export with the lowest turn (a user's first
    unfinished ask is turn 0, the next 1, ...), oldest first among equals. So a user's export
    waits for the renders already running, not for another user's queued burst. Only
    dispatched exports are in the broker's queue, which is first come, first served.
    Returns how many were dispatched.
    """
    with _dispatching, transaction.atomic():
        # Locking every unfinished row (a few per user) makes concurrent dispatchers take turns.
        unfinished = list(
            Export.objects.select_for_update(no_key=True)
            .filter(status__in=(ExportStatus.PENDING, ExportStatus.RUNNING))
            .order_by("turn", "created_at", "id")
        )
        now = timezone.now()
        stuck_since = now - timedelta(seconds=settings.PALIMPSEST_EXPORT_STUCK_SECONDS)
        for export in unfinished:
            if export.status == ExportStatus.RUNNING and (export.stage_at or now) < stuck_since:
                # Longer in one stage than any step may run: its queued step is gone.
                logger.warning("export %s stuck at %r; queueing it again", export.id, export.stage)
                export.stage_at = now
                export.save(update_fields=["stage_at"])
                transaction.on_commit(partial(_start_chain, str(export.id)))
        running = sum(1 for e in unfinished if e.status == ExportStatus.RUNNING)
        free = max(0, settings.PALIMPSEST_EXPORTS_AT_ONCE - running)
        chosen = [e for e in unfinished if e.status == ExportStatus.PENDING][:free]
        for export in chosen:
            export.status = ExportStatus.RUNNING
            export.stage = STARTING
            export.stage_at = now
            export.save(update_fields=["status", "stage", "stage_at"])
            _announce(export, "export.progress")
            # The worker must find the row as dispatched: queue the chain once it is committed.
            transaction.on_commit(partial(_start_chain, str(export.id)))
    return len(chosen)


def _export_chain(export_id: str) -> Any:
    """state at seq → HTML → PDF → stored file, each step's result passed to the next.

    The steps are named, not imported: tasks/tasks.py calls this module, not the other way.
    """
    step = current_app.signature
    return chain(
        step("tasks.tasks.export_read_state", args=(export_id,), immutable=True),
        step("tasks.tasks.export_render_html", args=(export_id,)),
        step("tasks.tasks.export_render_pdf", args=(export_id,)),
        step("tasks.tasks.export_store", args=(export_id,)),
    )


def _start_chain(export_id: str) -> None:
    """Queue the export's chain of tasks; if the broker refuses, the export waits again."""
    try:
        _export_chain(export_id).apply_async()
    except Exception:
        # Left running, it would hold its slot with no chain to finish it; waiting, the
        # next dispatch (beat's, at the latest) queues it again.
        logger.exception("queueing export %s failed; it waits for the next dispatch", export_id)
        Export.objects.filter(pk=export_id, status=ExportStatus.RUNNING, attempts=0).update(
            status=ExportStatus.PENDING, stage=WAITING
        )


def export_resume_unfinished() -> int:
    """Queue again the chains of exports that were running when the previous server stopped
    (an in-memory broker dies with its process), then dispatch waiting ones; how many."""
    ids = [
        str(pk)
        for pk in Export.objects.filter(status=ExportStatus.RUNNING).values_list("pk", flat=True)
    ]
    for export_id in ids:
        _start_chain(export_id)
    return len(ids) + exports_dispatch()


def _progress(export: Export, *, stage: str) -> None:
    """Record and announce a step of a running export (its percentage is the step's)."""
    export.stage = stage
    export.progress = EXPORT_PROGRESS[stage]
    export.stage_at = timezone.now()
    export.save(update_fields=["stage", "progress", "stage_at"])
    _announce(export, "export.progress")


def _open(export_id: str) -> Export | None:
    """The export if it still needs work, locked for this step; None once it is finished."""
    export = Export.objects.select_for_update(no_key=True).filter(pk=export_id).first()
    if export is None or export.status in (
        ExportStatus.DONE,
        ExportStatus.FAILED,
        ExportStatus.EXPIRED,
    ):
        return None
    return export


def export_read_state(*, export_id: str) -> str | None:
    """Step 1: the document's state right after the pinned seq (base64, for the next step)."""
    with transaction.atomic():
        export = _open(export_id)
        if export is None:
            return None
        export.status = ExportStatus.RUNNING
        export.attempts += 1
        export.started_at = export.started_at or timezone.now()
        export.save(update_fields=["status", "attempts", "started_at"])
        _progress(export, stage="reading the log")
        document_id, at_seq = export.document_id, export.at_seq
    # Outside the transaction: on SQLite it holds the write lock the event log needs.
    replay = document_replay(document_id=document_id, at_seq=at_seq)
    return base64.b64encode(content_doc(replay.updates).get_update()).decode("ascii")


def export_render_html(*, export_id: str, state: str | None) -> str | None:
    """Step 2: the document as an HTML page."""
    if state is None:
        return None
    with transaction.atomic():
        export = _open(export_id)
        if export is None:
            return None
        _progress(export, stage="laying out")
        title = export.document.title
        document_id, at_seq = export.document_id, export.at_seq
    doc: Doc[Any] = Doc()
    doc.apply_update(base64.b64decode(state))
    size, limit = len(document_text(doc)), settings.PALIMPSEST_EXPORT_MAX_CHARS
    if size > limit:
        raise ExportFailed(f"the document has {size:,} characters; exports take at most {limit:,}")
    # A stamp vouches for the log up to its seq: a log that does not check out is not stamped.
    report = chain_verify(document_id=document_id)
    if report.broken_seq is not None and report.broken_seq <= at_seq:
        raise ExportFailed(f"the edit log does not check out up to edit {at_seq}: {report.detail}")
    try:
        chain_hash = chain_hash_through(document_id=document_id, seq=at_seq)
    except (ChainBroken, LookupError) as exc:
        raise ExportFailed(f"the edit log does not check out up to edit {at_seq}: {exc}") from exc
    stamp = Stamp(str(document_id), at_seq, chain_hash.hex(), str(export_id))
    return document_html(doc, title=title, stamp=stamp)


def export_render_pdf(*, export_id: str, html: str | None) -> str | None:
    """Step 3: the PDF, written to a staging name (re-running it overwrites the same file)."""
    if html is None:
        return None
    with transaction.atomic():
        export = _open(export_id)
        if export is None:
            return None
        _progress(export, stage="rendering PDF")
    # WeasyPrint loads only where exports are rendered, not in every process that imports us.
    from tasks.render import pdf as renderer

    if settings.PALIMPSEST_EXPORT_RENDER_IN_CHILD:
        from tasks.render.isolated import html_to_pdf_isolated

        pdf = html_to_pdf_isolated(html, limit_s=render_limit_s())
    else:
        pdf = renderer.html_to_pdf(html)
    storage = export_storage()
    staged = f"staging/{export_id}.pdf"
    if storage.exists(staged):
        storage.delete(staged)
    storage.save(staged, ContentFile(pdf))
    return staged


def render_limit_s() -> float:
    """How long one render may take: Celery's soft limit (its hard one, if that is shorter)."""
    limits = [settings.CELERY_TASK_SOFT_TIME_LIMIT, settings.CELERY_TASK_TIME_LIMIT]
    return float(min(limit for limit in limits if limit) if any(limits) else 24 * 3600)


def export_store(*, export_id: str, staged: str | None) -> None:
    """Step 4: move the file into place and mark the export done, exactly once."""
    if staged is None:
        return
    storage = export_storage()
    with transaction.atomic():
        export = _open(export_id)
        if export is None:
            # Done already (this step ran before and its acknowledgement was lost).
            return
        final = f"{export_id}.pdf"
        if storage.exists(final):
            storage.delete(final)
        with storage.open(staged, "rb") as source:
            digest = hashlib.file_digest(source, "sha256").hexdigest()
            source.seek(0)
            name = storage.save(final, source)
        export.file.name = name
        export.size = storage.size(name)
        export.sha256 = digest
        export.status = ExportStatus.DONE
        export.progress = 100
        export.stage = "done"
        export.error = ""
        export.finished_at = timezone.now()
        export.expires_at = export.finished_at + timedelta(
            seconds=settings.PALIMPSEST_EXPORT_KEEP_SECONDS
        )
        export.save()
        _announce(export, "export.done")
        # Its slot is free: the next waiting export's turn.
        transaction.on_commit(exports_dispatch, robust=True)
    storage.delete(staged)


def export_fail(*, export_id: str, reason: str) -> None:
    """Mark an export failed with its reason, unless it finished meanwhile."""
    with transaction.atomic():
        export = _open(export_id)
        if export is None:
            return
        export.status = ExportStatus.FAILED
        export.error = reason[:EXPORT_ERROR_CHARS]
        export.finished_at = timezone.now()
        export.save(update_fields=["status", "error", "finished_at"])
        _announce(export, "export.failed")
        transaction.on_commit(exports_dispatch, robust=True)


def exports_expire(*, now: Any = None) -> int:
    """Delete the files of exports past their expiry; the rows stay, marked expired."""
    now = now or timezone.now()
    storage = export_storage()
    count = 0
    for export in Export.objects.filter(status=ExportStatus.DONE, expires_at__lt=now):
        with transaction.atomic():
            if export.file.name and storage.exists(export.file.name):
                storage.delete(export.file.name)
            Export.objects.filter(pk=export.pk).update(status=ExportStatus.EXPIRED, file="")
        count += 1
    return count


def dead_letter_record(
    *, task_id: str, task_name: str, args: Any, kwargs: Any, exception: str, traceback: str
) -> DeadLetter:
    """Keep a task that failed for good where an admin sees it."""
    return DeadLetter.objects.create(
        task_id=task_id,
        task_name=task_name,
        args=task_args_for_logs(args),
        kwargs=task_args_for_logs(kwargs),
        exception=exception[:DEAD_LETTER_EXCEPTION_CHARS],
        traceback=traceback[-DEAD_LETTER_TRACEBACK_CHARS:],
    )


# Longer strings in task arguments are content (an export step passes the document's state
# and HTML along the chain), which belongs in no log and no dead letter.
_ID_MAX_CHARS = 64


def task_args_for_logs(value: Any) -> Any:
    """Task arguments with content left out: ids and numbers stay, longer strings are replaced
    by their length (they arrived as JSON; anything else becomes its type's name)."""
    if isinstance(value, int | float | bool) or value is None:
        return value
    if isinstance(value, str):
        if len(value) <= _ID_MAX_CHARS and value.isprintable() and " " not in value:
            return value
        return f"<{len(value)} characters left out>"
    if isinstance(value, list | tuple):
        return [task_args_for_logs(v) for v in value]
    if isinstance(value, dict):
        return {str(k): task_args_for_logs(v) for k, v in value.items()}
    return f"<{type(value).__name__} left out>"
