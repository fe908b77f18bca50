"""Admin for the event log: read-only, never editable or deletable."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from events.models import Event, Snapshot


class ReadOnlyAdmin(admin.ModelAdmin):
    """An admin that can look but not touch."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Never."""
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Never."""
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        """Never."""
        return False


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    """Events."""

    list_display = ("document", "seq", "kind", "actor", "created_at")
    list_filter = ("kind",)
    exclude = ("update",)


@admin.register(Snapshot)
class SnapshotAdmin(ReadOnlyAdmin):
    """Snapshots."""

    list_display = ("document", "upto_seq", "events_folded", "duration_ms", "created_at")
    exclude = ("state", "pending")
