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
    # True: `state` and `pending` are zlib-compressed (a Yjs state compresses ~3x).
    compressed = models.BooleanField(default=False)
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


class EventSegment(models.Model):
    """Events `first_seq..last_seq` of one document, packed (events/packing.py says how).

    Written by the compaction task once those events are cold (a snapshot covers them); their
    rows are then deleted. A packed event keeps every field, its update and its hash: reading
    goes through `events.log.read_log`, which serves rows and segments alike.
    """

    document = models.ForeignKey(
        "collab.Document", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    first_seq = models.PositiveBigIntegerField()
    last_seq = models.PositiveBigIntegerField()
    data = models.BinaryField()
    # The full chain hash of event `last_seq`: the root every earlier link leads to.
    last_hash = models.BinaryField(max_length=32)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["document", "first_seq"], name="segment_unique_seq")
        ]

    def __str__(self) -> str:
        return f"{self.document_id}#{self.first_seq}..{self.last_seq}"


class AuthorCheckpoint(models.Model):
    """A cache: who inserted each character of the document after `upto_seq`.

    Attribution and diffs start from the newest one at or before their seq and replay only
    the events after it (collab/sync/attribution.py encodes `data`).
    """

    document = models.ForeignKey("collab.Document", on_delete=models.CASCADE, related_name="+")
    upto_seq = models.PositiveBigIntegerField()
    data = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["document", "upto_seq"], name="author_checkpoint_unique_seq"
            )
        ]

    def __str__(self) -> str:
        return f"{self.document_id}@{self.upto_seq}"


class ClientAuthor(models.Model):
    """The account that first wrote under a Yjs client id in a document: it alone may again.

    Claimed when a connection first sends items under the id (collab/realtime/consumer.py),
    and by the server's own writes (a restore); filled from the log for logs written before.
    """

    document = models.ForeignKey(
        "collab.Document", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    client_id = models.PositiveBigIntegerField()
    # None: a server write with no account, or the account was deleted (the id stays taken).
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["document", "client_id"], name="client_author_unique")
        ]

    def __str__(self) -> str:
        return f"{self.document_id}: client {self.client_id}"
