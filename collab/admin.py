"""Admin for members, tokens and presence. A document's own admin page, with its edit
history, is in events/admin.py."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from collab.models import ApiToken, Membership, PresenceSession, Version


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    """Who may use which document, and how."""

    list_display = ("document", "user", "role", "created_at")
    list_filter = ("role",)
    search_fields = ("document__title", "user__username")


@admin.register(Version)
class VersionAdmin(admin.ModelAdmin):
    """Named versions: a label on a seq."""

    list_display = ("label", "document", "seq", "created_by", "created_at")
    search_fields = ("label", "document__title")
    readonly_fields = ("created_by", "created_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        """Versions are named from a document's edit history page, at the seq shown there."""
        return False

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        """The seq a version names cannot move; its label can."""
        return (*self.readonly_fields, "document", "seq") if obj else self.readonly_fields


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens: only prefixes are shown; the secret is never stored."""

    list_display = ("prefix", "user", "created_at", "last_used_at")
    readonly_fields = ("digest", "prefix", "created_at", "last_used_at")


@admin.register(PresenceSession)
class PresenceSessionAdmin(admin.ModelAdmin):
    """Live connections."""

    list_display = ("user", "document", "connected_at", "last_seen")
