"""Exports and the record of background jobs that failed for good."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.db import models


def export_storage() -> FileSystemStorage:
    """Where export files live; never under a URL the web server serves by itself."""
    return FileSystemStorage(location=settings.PALIMPSEST_EXPORT_DIR)


class ExportStatus(models.TextChoices):
    """Where an export is in its chain."""

    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    EXPIRED = "expired", "Expired"


class Export(models.Model):
    """One requested PDF of a document as it was after event `at_seq`."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    document = models.ForeignKey("collab.Document", on_delete=models.CASCADE, related_name="+")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    format = models.CharField(max_length=10, default="pdf")
    # Pinned when the export is requested, so later edits never change what it shows.
    at_seq = models.PositiveBigIntegerField()
    status = models.CharField(
        max_length=10, choices=ExportStatus.choices, default=ExportStatus.PENDING
    )
    # How many of the requester's exports were unfinished when this one was asked for: a free
    # slot goes to the lowest turn (oldest first), so a burst waits behind others' first asks.
    turn = models.PositiveSmallIntegerField(default=0)
    progress = models.PositiveSmallIntegerField(default=0)
    stage = models.CharField(max_length=40, blank=True)
    # When the stage last changed: a running export whose stage stays longer than any step may
    # run has lost its queued step (a broker that restarted empty) and is queued again.
    stage_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    file = models.FileField(storage=export_storage, blank=True)
    size = models.PositiveIntegerField(default=0)
    # The finished file's SHA-256 (hex), recorded when it is stored: `verify_export` compares.
    sha256 = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"export {self.id} of {self.document_id}@{self.at_seq} ({self.status})"


class DeadLetter(models.Model):
    """A task that failed after its last retry: what ran, with what, and why it failed."""

    task_id = models.CharField(max_length=255, db_index=True)
    task_name = models.CharField(max_length=255)
    args = models.JSONField(default=list)
    kwargs = models.JSONField(default=dict)
    exception = models.TextField()
    traceback = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.task_name}[{self.task_id}]: {self.exception[:80]}"
