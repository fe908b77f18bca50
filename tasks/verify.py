"""Checking an exported PDF against the edit log and the export record it names.

An export's PDF carries a stamp (collab.sync.html.Stamp) in its metadata: the document, the
seq it shows, the log's chain hash at that seq and the export's id. A file checks out when
the stamp's chain hash is the one the log derives at that seq (and the chain up to it is
intact), and the file's SHA-256 is the one recorded when the export was stored. The stamp
ties the PDF to the log; the digest ties every other byte (the text, the footer) to what was
rendered.
"""

from __future__ import annotations

import hashlib
import io
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from pypdf import PdfReader
from pypdf.errors import PyPdfError

from collab.models import Document
from collab.sync.html import STAMP_FIELDS
from events.integrity import ChainBroken, chain_hash_through, chain_verify
from tasks.models import Export


class Outcome(IntEnum):
    """The verdict, numbered as `verify_export` exits and named as it and the admin say it."""

    MATCHES = 0
    ALTERED = 1
    UNKNOWN = 2


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a check found, and a sentence saying why."""

    outcome: Outcome
    detail: str
    document_id: str | None = None
    seq: int | None = None
    export_id: str | None = None


def export_verify(data: bytes) -> Verdict:
    """Check a PDF's stamp against the log and its bytes against the export record."""
    try:
        info: Mapping[str, Any] = PdfReader(io.BytesIO(data)).metadata or {}
    except (PyPdfError, ValueError, OSError) as exc:
        return Verdict(Outcome.UNKNOWN, f"not a readable PDF: {type(exc).__name__}")
    stamp = {field: info.get(f"/{name}") for field, name in STAMP_FIELDS.items()}
    if all(value is None for value in stamp.values()):
        return Verdict(Outcome.UNKNOWN, "the PDF has no Palimpsest stamp: not one of our exports")
    try:
        document_id = uuid.UUID(str(stamp["document_id"]))
        export_id = uuid.UUID(str(stamp["export_id"]))
        seq = int(str(stamp["seq"]))
        stamped = bytes.fromhex(str(stamp["chain_hash"]))
    except ValueError:
        return Verdict(Outcome.ALTERED, "the stamp is incomplete or malformed")

    def named(outcome: Outcome, detail: str) -> Verdict:
        """A verdict on this stamp."""
        return Verdict(outcome, detail, str(document_id), seq, str(export_id))

    if not Document.objects.filter(pk=document_id).exists():
        return named(Outcome.UNKNOWN, f"no document {document_id}")
    export = Export.objects.filter(pk=export_id, document_id=document_id).first()
    if export is None:
        return named(Outcome.UNKNOWN, f"no export {export_id} of that document")
    try:
        logged = chain_hash_through(document_id=document_id, seq=seq)
    except LookupError:
        return named(Outcome.ALTERED, f"the log has no edit {seq}")
    except ChainBroken as exc:
        detail = f"the log's chain is broken up to edit {seq}: {exc}"
        return named(Outcome.ALTERED, detail)
    if logged != stamped:
        return named(Outcome.ALTERED, f"the stamp's chain hash is not the log's at edit {seq}")
    # A row keeps its hash as written: an edit to the event itself shows only on recomputing.
    report = chain_verify(document_id=document_id)
    if report.broken_seq is not None and report.broken_seq <= seq:
        return named(Outcome.ALTERED, f"the log was altered: {report.detail}")
    if export.at_seq != seq:
        detail = f"the export was of edit {export.at_seq}, the stamp says {seq}"
        return named(Outcome.ALTERED, detail)
    if not export.sha256:
        return named(Outcome.UNKNOWN, "the export recorded no digest of its file")
    if hashlib.sha256(data).hexdigest() != export.sha256:
        return named(Outcome.ALTERED, "the file's bytes differ from the ones the export made")
    return named(
        Outcome.MATCHES,
        f"export {export_id}: the document after edit {seq}, as the log and the export record it",
    )
