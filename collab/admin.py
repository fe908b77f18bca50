"""Admin for documents, members, tokens and presence."""

from django.contrib import admin

from collab.models import ApiToken, Document, Membership, PresenceSession


class MembershipInline(admin.TabularInline):
    """Members on the document page."""

    model = Membership
    extra = 0


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    """Documents."""

    list_display = ("title", "owner", "created_at")
    search_fields = ("title", "owner__username")
    inlines = [MembershipInline]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens: only prefixes are shown; the secret is never stored."""

    list_display = ("prefix", "user", "created_at", "last_used_at")
    readonly_fields = ("digest", "prefix", "created_at", "last_used_at")


@admin.register(PresenceSession)
class PresenceSessionAdmin(admin.ModelAdmin):
    """Live connections."""

    list_display = ("user", "document", "connected_at", "last_seen")
