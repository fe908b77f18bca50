"""The append-only event log: every accepted Yjs update, in order, per document."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class EventKind(models.TextChoices):
    """Where an event came from."""

    UPDATE = "update", "Update"
    RESTORE = "restore", "Restore"


class Event(models.Model):
    """One accepted Yjs update; `(document, seq)` is unique and gap-free per document."""

    # No index of its own: the unique (document, seq) index serves every lookup by document,
    # and each index is one more page written per commit.
    document = models.ForeignKey(
        "collab.Document", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    seq = models.PositiveBigIntegerField()
    kind = models.CharField(max_length=10, choices=EventKind.choices, default=EventKind.UPDATE)
    update = models.BinaryField()
    # Stamped by the server from the authenticated connection, never taken from the client.
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    yjs_client_id = models.PositiveBigIntegerField(null=True, blank=True)
    created_at = models.DateTimeField()
    # Tamper evidence: sha256 over the previous event's hash and this event's fields
    # (events/chain.py says exactly which bytes). Raw 32 bytes, not hex: the chain is computed
    # on digests, and it is half the size on every row. Written only by the append.
    hash = models.BinaryField(max_length=32)

    class Meta:
        constraints = [
            # The concurrency guard: two appenders can never both write seq N.
            models.UniqueConstraint(fields=["document", "seq"], name="event_unique_seq")
        ]
        ordering = ["document", "seq"]

    def __str__(self) -> str:
        return f"{self.document_id}#{self.seq}"


class Snapshot(models.Model):
    """A cache: the document state with every event up to `upto_seq` applied."""

    document = models.ForeignKey("collab.Document", on_delete=models.CASCADE, related_name="+")
    upto_seq = models.PositiveBigIntegerField()
    # `Doc.get_update()` of the document with events 1..upto_seq applied.
    state = models.BinaryField()
    # Logged updates up to upto_seq that were still waiting on a missing dependency: the
    # encoded state leaves them out, so they are kept whole (lib0 length-prefixed) and
    # applied after it (collab/sync/compaction.py).
    pending = models.BinaryField(default=b"")
    # How many events this snapshot folded in beyond the one before it, and how long it took.
    events_folded = models.PositiveIntegerField(default=0)
    duration_ms = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["document", "upto_seq"], name="snapshot_unique_seq")
        ]

    def __str__(self) -> str:
        return f"{self.document_id}@{self.upto_seq}"
