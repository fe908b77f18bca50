"""Admin for documents, members, tokens and presence."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from collab.models import ApiToken, Document, Membership, PresenceSession, Version


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
            from events.admin import document_edits_view

            return document_edits_view(self, request, object_id)

        return [
            path(
                "<path:object_id>/edits/",
                self.admin_site.admin_view(view),
                name="collab_document_edits",
            ),
            *super().get_urls(),
        ]


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
