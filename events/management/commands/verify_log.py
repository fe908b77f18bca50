"""`manage.py verify_log [DOC ...]`: check the event log's hash chain, name each first broken link.

Exit status 0 when every chain is intact, 1 when one is broken, 2 for an unknown document.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from collab.models import Document
from events.integrity import chains_verify


class Command(BaseCommand):
    """Print one line per broken document and a summary; fail if any chain is broken."""

    help = (
        "Check the hash chain of the event log of each DOC (default: every document). "
        "Prints a line per broken document naming its first broken seq; exits 1 if any."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        """DOC ids, none meaning every document."""
        parser.add_argument("documents", nargs="*", metavar="DOC", help="document id (UUID)")

    def handle(self, *args: Any, documents: list[str], verbosity: int, **options: Any) -> None:
        """Check, report, and fail on the first broken link of any document."""
        ids = [_document_id(value) for value in documents] or None
        checked = events = 0
        broken: list[str] = []
        try:
            for report in chains_verify(document_ids=ids):
                checked += 1
                events += report.events
                if not report.intact:
                    broken.append(f"{report.document_id} at seq {report.broken_seq}")
                    self.stdout.write(
                        f"{report.document_id}: broken at seq {report.broken_seq} "
                        f"({report.reason}): {report.detail}"
                    )
                elif verbosity >= 2:
                    counted = _count(report.events, "event")
                    self.stdout.write(f"{report.document_id}: {counted}, intact")
        except Document.DoesNotExist as exc:
            raise CommandError(str(exc), returncode=2) from exc
        if broken:
            raise CommandError(
                f"{len(broken)} of {_count(checked, 'document')} broken: " + "; ".join(broken)
            )
        self.stdout.write(f"{_count(checked, 'document')}, {_count(events, 'event')}: chain intact")


def _count(number: int, noun: str) -> str:
    """`1 document`, `2 documents`."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def _document_id(value: str) -> uuid.UUID:
    """A document id from the command line."""
    try:
        return uuid.UUID(value)
    except ValueError:
        raise CommandError(f"not a document id: {value!r}", returncode=2) from None
