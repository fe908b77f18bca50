"""Documents, who may use them, API tokens and live presence."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from collab.limits import LABEL_MAX, TITLE_MAX


class Role(models.TextChoices):
    """What a member may do with a document."""

    OWNER = "owner", "Owner"
    EDITOR = "editor", "Editor"
    VIEWER = "viewer", "Viewer"


class Document(models.Model):
    """A collaboratively edited rich-text document; its content lives in the event log."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    title = models.CharField(max_length=TITLE_MAX)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="owned_documents"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # The log's head: its last event's seq and chain hash, written in the append's own
    # transaction (events/services.py), so the next append and every catch-up read one row
    # instead of the log. 0 and null for an empty log.
    head_seq = models.PositiveBigIntegerField(default=0, editable=False)
    head_hash = models.BinaryField(null=True, editable=False)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.title} ({self.id})"


class Membership(models.Model):
    """A user's role on one document; the owner has one too."""

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=10, choices=Role.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["document", "user"], name="one_role_per_user")
        ]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} of {self.document_id}"


class ApiToken(models.Model):
    """A bearer token for scripts; only its SHA-256 digest is stored."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    digest = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=8, help_text="First characters, to tell tokens apart.")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user})"


class PresenceSession(models.Model):
    """One live WebSocket connection to a document, kept fresh by heartbeats."""

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="sessions")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="presence_sessions"
    )
    connection_id = models.CharField(max_length=64, unique=True)
    # Awareness client ids this connection announced, so a purge can remove its caret.
    yjs_client_ids = models.JSONField(default=list, blank=True)
    connected_at = models.DateTimeField(auto_now_add=True)
    last_seen = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.user} on {self.document_id}"


class Version(models.Model):
    """A name for the document as it was right after event `seq` ("sent to client")."""

    document = models.ForeignKey(Document, on_delete=models.CASCADE, related_name="versions")
    seq = models.PositiveBigIntegerField()
    label = models.CharField(max_length=LABEL_MAX)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["document", "seq", "pk"]

    def __str__(self) -> str:
        return f"{self.label} ({self.document_id}@{self.seq})"
