"""Admin for the event log (read-only, never editable or deletable) and for documents,
whose page links to their edit history: the timeline, the document after any seq, authored
diffs, restore, versions and exports."""

import uuid
from typing import Any

from django.contrib import admin, messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from collab.adminkit import ReadOnlyAdmin
from collab.models import Document, Membership
from collab.permissions import NotAllowed, NotFound
from collab.sync.colors import author_color
from events import history, restore
from events.models import Event, EventSegment, Snapshot
from events.replays import Busy
from events.selectors import document_head
from tasks.services import export_request


class MembershipInline(admin.TabularInline):
    """Members on the document page."""

    model = Membership
    extra = 0


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    """Documents."""

    list_display = ("title", "owner", "created_at", "edit_history")
    search_fields = ("title", "owner__username")
    inlines = [MembershipInline]

    @admin.display(description="History")
    def edit_history(self, obj: Document) -> str:
        """A link to the document's edit history."""
        return format_html(
            '<a href="{}">Edit history</a>', reverse("admin:collab_document_edits", args=[obj.pk])
        )

    def get_urls(self) -> list[URLPattern]:
        """The document's edit history page (Django's own "history" is the admin's change log)."""

        def view(request: HttpRequest, object_id: str) -> HttpResponse:
            return document_edits_view(self, request, object_id)

        return [
            path(
                "<path:object_id>/edits/",
                self.admin_site.admin_view(view),
                name="collab_document_edits",
            ),
            *super().get_urls(),
        ]


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    """Events still in rows; packed ones are under "Event segments", and a document's Edit
    history page shows every event either way (it reads through events.log)."""

    list_display = ("document", "seq", "kind", "actor", "created_at", "chain_hash")
    list_filter = ("kind",)
    exclude = ("update",)
    readonly_fields = ("chain_hash",)

    @admin.display(description="hash")
    def chain_hash(self, event: Event) -> str:
        """The event's link in its document's hash chain, in hex (`verify_log` checks it)."""
        return bytes(event.hash).hex() if event.hash else "-"


@admin.register(Snapshot)
class SnapshotAdmin(ReadOnlyAdmin):
    """Snapshots."""

    list_display = ("document", "upto_seq", "events_folded", "duration_ms", "created_at")
    exclude = ("state", "pending")


@admin.register(EventSegment)
class EventSegmentAdmin(ReadOnlyAdmin):
    """Packed segments: a run of one document's cold events each (events/packing.py)."""

    list_display = ("document", "first_seq", "last_seq", "stored_bytes", "root", "created_at")
    exclude = ("data", "last_hash")
    readonly_fields = ("stored_bytes", "root")

    @admin.display(description="bytes")
    def stored_bytes(self, segment: EventSegment) -> int:
        """The packed blob's size."""
        return len(segment.data)

    @admin.display(description="root hash")
    def root(self, segment: EventSegment) -> str:
        """The chain hash of the segment's last event, in hex (`verify_log` checks it)."""
        return bytes(segment.last_hash).hex()


# -- a document's edit history (linked from the document's admin page) ---------------------


def _int(value: str | None) -> int | None:
    """A query parameter as a non-negative int, or None."""
    try:
        number = int(value or "")
    except ValueError:
        return None
    return number if number >= 0 else None


def document_edits_view(model_admin: Any, request: HttpRequest, object_id: str) -> HttpResponse:
    """Timeline of bursts, the document after any seq, authored diff, restore, versions, export."""
    document = Document.objects.filter(pk=object_id).first() if _is_uuid(object_id) else None
    if document is None or not model_admin.has_view_permission(request, document):
        raise Http404("no such document")
    user: Any = request.user
    head = document_head(document_id=document.id)
    here = reverse("admin:collab_document_edits", args=[document.id])

    if request.method == "POST":
        action = request.POST.get("action")
        seq = _int(request.POST.get("seq"))
        if seq is None or seq > head:
            messages.error(request, f"seq must be between 0 and {head}")
            return redirect(here)
        try:
            if action == "restore":
                new_seq = restore.document_restore(
                    document=document, by=user, seq=seq, operator=True
                )
                if new_seq is None:
                    messages.info(request, f"The document already is as it was after #{seq}.")
                else:
                    messages.success(request, f"Restored to #{seq} as a new event, #{new_seq}.")
                return redirect(f"{here}?seq={new_seq or seq}")
            if action == "version":
                version = restore.version_create(
                    document=document,
                    by=user,
                    seq=seq,
                    label=request.POST.get("label", ""),
                    operator=True,
                )
                messages.success(request, f"Named #{seq} “{version.label}”.")
                return redirect(f"{here}?seq={seq}")
            if action == "export":
                export = export_request(
                    user=user, document_id=document.id, at_seq=seq, operator=True
                )
                messages.success(request, f"Exporting #{seq} as PDF; it is listed under Exports.")
                return redirect(reverse("admin:tasks_export_change", args=[export.pk]))
        except (NotAllowed, NotFound, ValueError) as exc:
            messages.error(request, str(exc))
            return redirect(f"{here}?seq={seq}")
        messages.error(request, "unknown action")
        return redirect(here)

    seq = _int(request.GET.get("seq"))
    seq = head if seq is None or seq > head else seq
    content = history.document_content(document_id=document.id, at_seq=seq)
    before = _int(request.GET.get("before"))
    bursts = history.document_bursts(document_id=document.id, before=before)
    diff_from, diff_to = _int(request.GET.get("from")), _int(request.GET.get("to"))
    if diff_from is not None and diff_to is not None and not diff_from <= diff_to <= head:
        messages.error(request, f"compare two seqs from 0 to {head}, the earlier one first")
    confirm = _int(request.GET.get("confirm_restore"))
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Edit history: {document.title}",
        "opts": model_admin.model._meta,
        "original": document,
        "document": document,
        "head": head,
        "seq": seq,
        "content": content,
        "bursts": [(b, author_color(b.actor)) for b in bursts],
        "older": bursts[-1].first_seq if bursts and bursts[-1].first_seq > 1 else None,
        "versions": history.document_versions(document_id=document.id),
        "confirm_restore": confirm if confirm is not None and confirm <= head else None,
        "may_change": model_admin.has_change_permission(request, document),
        "diff_from": diff_from,
        "diff_to": diff_to,
    }
    try:
        # Both replay the log from its start (a snapshot keeps no authorship): only on request.
        context["diff"] = _diff(document.id, diff_from, diff_to, head)
        context["attribution"] = (
            _attribution(document.id, seq) if request.GET.get("authors") else None
        )
    except Busy as exc:
        messages.warning(request, str(exc))
    return TemplateResponse(request, "admin/events/document_edits.html", context)


def _is_uuid(value: str) -> bool:
    """Whether `value` is a UUID."""

    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _diff(document_id: Any, start: int | None, end: int | None, head: int) -> Any:
    """The authored diff between two seqs, or None when none was asked for."""

    if start is None or end is None or start > head or end > head or end < start:
        return None
    changes = history.document_diff(document_id=document_id, from_seq=start, to_seq=end)
    return [(change, author_color(change.author)) for change in changes]


def _attribution(document_id: Any, seq: int) -> Any:
    """Who wrote each part of the document at `seq`, with each author's colour."""

    result = history.document_attribution(document_id=document_id, at_seq=seq)
    return {
        "runs": [(author, text, author_color(author)) for author, text in result.runs],
        "authors": [(author, chars, author_color(author)) for author, chars in result.authors],
    }
