"""`manage.py verify_export FILE.pdf`: whether an exported PDF is what the log and its export
record say it is (tasks/verify.py).

Exit status 0 when the stamp and the file's SHA-256 match, 1 when either was altered, 2 when
the file names no document or export this installation knows (or is no stamped PDF).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from tasks.verify import Outcome, export_verify


class Command(BaseCommand):
    """Check one file; one line saying what was found."""

    help = (
        "Check an exported PDF's stamp (document, edit, chain hash) against the edit log and "
        "its bytes against the export record. Exits 0 if both match, 1 if altered, 2 if unknown."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        """The file."""
        parser.add_argument("file", metavar="FILE.pdf", type=Path)

    def handle(self, *args: Any, file: Path, **options: Any) -> None:
        """Read, check, report; the exit status carries the verdict."""
        try:
            data = file.read_bytes()
        except OSError as exc:
            raise CommandError(f"cannot read {file}: {exc.strerror}", returncode=2) from None
        verdict = export_verify(data)
        if verdict.outcome != Outcome.MATCHES:
            raise CommandError(
                f"{verdict.outcome.name}: {verdict.detail}", returncode=int(verdict.outcome)
            )
        self.stdout.write(f"OK: {verdict.detail}")
