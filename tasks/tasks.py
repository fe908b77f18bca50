"""Celery tasks: thin, they take ids and call one service. Retries and failure hooks live here."""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

from celery import Task, group, shared_task
from celery.exceptions import Reject, SoftTimeLimitExceeded
from django.conf import settings
from django.db import InterfaceError, OperationalError

from collab.selectors import documents_with_stale_presence
from collab.services import presence_purge_stale
from events.compaction import document_compact, history_compact
from events.selectors import documents_to_compact, documents_to_pack
from tasks import services
from tasks.render.errors import RenderError, RendererStopped

logger = logging.getLogger(__name__)

# Failures worth another try: the database or the broker went away for a moment. Anything
# else (a renderer error, a bad document) fails the same way every time.
TRANSIENT = (OperationalError, InterfaceError, ConnectionError, TimeoutError)
_RETRY: dict[str, Any] = {
    "autoretry_for": TRANSIENT,
    "retry_backoff": 2,  # 2 s, 4 s, 8 s, ... with full jitter
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 4,
}


class ExportStep(Task):
    """A step of the export chain: once it fails for good, the export is marked failed."""

    # A step's result is the document (its state, its HTML) and goes straight to the next
    # step in the chain's message; it is not copied into the results table.
    ignore_result = True

    def on_failure(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        """Record why on the export; the requester is told."""
        export_id = kwargs.get("export_id") or (args[-1] if args else None)
        if export_id is not None:
            services.export_fail(export_id=str(export_id), reason=_reason(exc))


def _reason(exc: BaseException) -> str:
    """A failure as an export's owner should read it."""
    if isinstance(exc, SoftTimeLimitExceeded):
        return f"rendering took longer than {services.render_limit_s():g} s, the limit"
    if isinstance(exc, RenderError | services.ExportFailed):
        return str(exc) or type(exc).__name__
    if isinstance(exc, TRANSIENT):
        return f"temporary failure persisted after retries: {type(exc).__name__}: {exc}"
    return f"{type(exc).__name__}: {exc}"


@shared_task(base=ExportStep, bind=True, **_RETRY)
def export_read_state(self: Task, export_id: str) -> str | None:
    """Export step 1: the document at the pinned seq."""
    return services.export_read_state(export_id=export_id)


@shared_task(base=ExportStep, bind=True, **_RETRY)
def export_render_html(self: Task, state: str | None, export_id: str) -> str | None:
    """Export step 2: HTML from the document's TipTap content."""
    return services.export_render_html(export_id=export_id, state=state)


@shared_task(base=ExportStep, bind=True, **_RETRY)
def export_render_pdf(self: Task, html: str | None, export_id: str) -> str | None:
    """Export step 3: the PDF (WeasyPrint, fetching nothing)."""
    try:
        return services.export_render_pdf(export_id=export_id, html=html)
    except RendererStopped as exc:
        # Not the export's fault: back to the queue (a Redis broker keeps it; the embedded
        # one's is resumed from the database when the server starts again).
        raise Reject(str(exc), requeue=True) from exc


@shared_task(base=ExportStep, bind=True, **_RETRY)
def export_store(self: Task, staged: str | None, export_id: str) -> None:
    """Export step 4: the file in place, the export done, the requester told."""
    services.export_store(export_id=export_id, staged=staged)


@shared_task(**_RETRY)
def compact_document(document_id: str) -> dict[str, Any] | None:
    """Snapshot a document's log tail (events.compaction); the history part is the sweep's."""
    result = document_compact(document_id=uuid.UUID(document_id), history=False)
    done = result.snapshot
    return None if done is None else {"upto_seq": done.upto_seq, "events": done.events_folded}


@shared_task(**_RETRY)
def compact_history(document_id: str) -> dict[str, int]:
    """Authorship checkpoints and packing for a document (events.compaction)."""
    authors, packed = history_compact(document_id=uuid.UUID(document_id))
    return {"author_checkpoints": authors, "segments": packed.segments}


@shared_task(**_RETRY)
def compaction_sweep() -> int:
    """Beat: compact every document whose tail passed the threshold, then the history of
    every document whose checkpoints or packing are due, in parallel."""
    ids = documents_to_compact(min_tail=max(1, settings.PALIMPSEST_COMPACT_TAIL_EVENTS))
    if ids:
        group(compact_document.s(str(d)) for d in ids).apply_async()
    due = documents_to_pack(
        author_every=settings.PALIMPSEST_AUTHOR_CHECKPOINT_EVENTS,
        segment=settings.PALIMPSEST_SEGMENT_EVENTS,
    )
    if due:
        group(compact_history.s(str(d)) for d in due).apply_async()
    return len(ids)


@shared_task(**_RETRY)
def purge_document_sessions(document_id: str) -> int:
    """Remove one document's stale presence rows and tell its collaborators."""
    purged = presence_purge_stale(
        document_id=uuid.UUID(document_id),
        older_than=timedelta(seconds=settings.PALIMPSEST_PRESENCE_STALE_SECONDS),
    )
    return len(purged)


@shared_task(**_RETRY)
def purge_stale_sessions() -> int:
    """Beat: purge presence left by dead connections (a crashed server's too), per document."""
    ids = documents_with_stale_presence(
        older_than=timedelta(seconds=settings.PALIMPSEST_PRESENCE_STALE_SECONDS)
    )
    if ids:
        group(purge_document_sessions.s(str(d)) for d in ids).apply_async()
    return len(ids)


@shared_task(**_RETRY)
def dispatch_exports() -> int:
    """Beat: hand waiting exports to the workers if slots are free (a dispatch may be lost)."""
    return services.exports_dispatch()


@shared_task(**_RETRY)
def expire_exports() -> int:
    """Beat: delete export files past their expiry."""
    return services.exports_expire()
