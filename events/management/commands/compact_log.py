"""`manage.py compact_log [DOC ...]`: compact and pack existing logs now, checking the chain
before and after.

What the compaction task does for a document (events.compaction.document_compact), run at
once for every document (or those given), with the packed rows deleted at once: the way to
migrate logs written before packed segments. A document whose chain is broken is left as it
is and named. Exit status 0 when every chain is intact before and after, 1 otherwise, 2 for
an unknown document. On SQLite, `--vacuum` returns the deleted rows' pages to the disk.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

from collab.models import Document
from events.compaction import document_compact
from events.integrity import chain_verify, chains_verify


class Command(BaseCommand):
    """Verify, compact and pack, verify again; one line per document."""

    help = (
        "Compact and pack the event log of each DOC (default: every document), checking its "
        "hash chain before and after. Exits 1 if a chain is broken."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        """DOC ids, none meaning every document; --vacuum."""
        parser.add_argument("documents", nargs="*", metavar="DOC", help="document id (UUID)")
        parser.add_argument(
            "--vacuum", action="store_true", help="SQLite: VACUUM afterwards (needs free disk)"
        )

    def handle(self, *args: Any, documents: list[str], vacuum: bool, **options: Any) -> None:
        """Check, compact, check again; fail if any chain is or becomes broken."""
        try:
            ids = [uuid.UUID(value) for value in documents] or None
        except ValueError as exc:
            raise CommandError(f"not a document id: {exc}", returncode=2) from None
        broken: list[str] = []
        try:
            reports = list(chains_verify(document_ids=ids))
        except Document.DoesNotExist as exc:
            raise CommandError(str(exc), returncode=2) from exc
        for before in reports:
            doc = before.document_id
            if not before.intact:
                broken.append(str(doc))
                self.stdout.write(f"{doc}: not compacted, broken at seq {before.broken_seq}")
                continue
            done = document_compact(document_id=doc, grace_s=-1)
            after = chain_verify(document_id=doc)
            if not after.intact or after.events != before.events:
                broken.append(str(doc))
            self.stdout.write(
                f"{doc}: {before.events} events, chain intact before; "
                f"{done.packed.segments} segments packed, {done.packed.rows_deleted} rows "
                f"deleted, {done.checkpoints} snapshots and {done.author_checkpoints} "
                f"authorship checkpoints written; chain "
                + ("intact after" if after.intact else f"BROKEN after at seq {after.broken_seq}")
            )
        if vacuum and connection.vendor == "sqlite":
            with connection.cursor() as cursor:
                cursor.execute("VACUUM")
        if broken:
            raise CommandError(f"{len(broken)} broken: " + ", ".join(broken))
