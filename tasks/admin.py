"""Admin for exports and dead letters: what ran, what failed and why."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from events.admin import ReadOnlyAdmin
from tasks.models import DeadLetter, Export


@admin.register(Export)
class ExportAdmin(ReadOnlyAdmin):
    """Exports: status, progress, the reason of a failure. Deleting removes the file too."""

    list_display = ("id", "document", "requested_by", "at_seq", "status", "progress", "created_at")
    list_filter = ("status",)
    search_fields = ("id", "document__title", "requested_by__username")
    readonly_fields = ("error",)

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
