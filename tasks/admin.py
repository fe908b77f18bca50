"""Admin for exports and dead letters: what ran, what failed and why."""

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from collab.adminkit import ReadOnlyAdmin
from collab.http import attachment
from tasks import services
from tasks.models import DeadLetter, Export, ExportStatus
from tasks.verify import export_verify

# The largest upload the verify page reads (exports are capped well below this).
VERIFY_MAX_BYTES = 64 * 1024 * 1024


class VerifyForm(forms.Form):
    """One exported PDF to check."""

    file = forms.FileField(label="Exported PDF")


@admin.register(Export)
class ExportAdmin(ReadOnlyAdmin):
    """Exports: status, progress, the reason of a failure. Deleting removes the file too."""

    list_display = (
        "id", "document", "requested_by", "at_seq", "status", "progress", "created_at", "pdf",
    )  # fmt: skip
    list_filter = ("status",)
    search_fields = ("id", "document__title", "requested_by__username")
    readonly_fields = ("error", "pdf")
    change_list_template = "admin/tasks/export/change_list.html"

    @admin.display(description="PDF")
    def pdf(self, obj: Export) -> str:
        """A download link once the export is done."""
        if obj.status != ExportStatus.DONE or not obj.file.name:
            return "—"
        return format_html(
            '<a href="{}">Download</a>', reverse("admin:tasks_export_download", args=[obj.pk])
        )

    def get_urls(self) -> list[URLPattern]:
        """Staff download exports here; the API serves members only."""
        return [
            path(
                "<path:object_id>/download/",
                self.admin_site.admin_view(self.download_view),
                name="tasks_export_download",
            ),
            path(
                "verify/",
                self.admin_site.admin_view(self.verify_view),
                name="tasks_export_verify",
            ),
            *super().get_urls(),
        ]

    def verify_view(self, request: HttpRequest) -> HttpResponse:
        """Upload a PDF and see what `verify_export` says of it (staff who may view exports)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        verdict = None
        form = VerifyForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            if upload.size > VERIFY_MAX_BYTES:
                form.add_error("file", f"larger than {VERIFY_MAX_BYTES // 2**20} MB")
            else:
                verdict = export_verify(upload.read())
        context = {
            **self.admin_site.each_context(request),
            "title": "Verify an exported PDF",
            "opts": self.model._meta,
            "form": form,
            "verdict": verdict,
            "label": verdict.outcome.name.capitalize() if verdict else "",
        }
        return TemplateResponse(request, "admin/tasks/export/verify.html", context, status=200)

    def download_view(self, request: HttpRequest, object_id: str) -> FileResponse:
        """The finished PDF, for staff who may view exports."""
        export = self.get_object(request, object_id)
        if export is None or not self.has_view_permission(request, export):
            raise Http404("no such export")
        if export.status != ExportStatus.DONE or not export.file.name:
            raise Http404("this export has no file (yet)")
        return attachment(
            export.file, filename=services.export_filename(export), content_type="application/pdf"
        )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Staff with the permission may remove exports."""
        return bool(request.user.has_perm("tasks.delete_export"))

    def delete_model(self, request: HttpRequest, obj: Export) -> None:
        """Remove the file with the row."""
        if obj.file.name:
            obj.file.delete(save=False)
        super().delete_model(request, obj)


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyAdmin):
    """Tasks that failed after their last retry."""

    list_display = ("created_at", "task_name", "task_id", "exception")
    list_filter = ("task_name",)
    search_fields = ("task_id", "task_name", "exception")
