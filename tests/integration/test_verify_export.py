"""Verifiable exports: the PDF names its document, edit and chain hash; `verify_export` and the
admin check a file against the log and the export record."""

from __future__ import annotations

import hashlib
import io
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client
from pypdf import PdfReader, PdfWriter

from events.integrity import chain_hash_at
from events.models import Event
from tasks import services
from tasks.models import Export, ExportStatus
from tasks.render.pdf import html_to_pdf
from tests.integration.test_history import Writer, _append, _document, _users

pytestmark = pytest.mark.django_db(transaction=True)


def _exported(document: Any, user: Any, at_seq: int) -> Export:
    """An export of `document` after `at_seq`, run step by step as the worker's chain runs."""
    export = Export.objects.create(document=document, requested_by=user, at_seq=at_seq)
    export_id = str(export.id)
    state = services.export_read_state(export_id=export_id)
    html = services.export_render_html(export_id=export_id, state=state)
    staged = services.export_render_pdf(export_id=export_id, html=html)
    services.export_store(export_id=export_id, staged=staged)
    export.refresh_from_db()
    assert export.status == ExportStatus.DONE
    return export


def _verify(path: Path) -> tuple[int, str]:
    """`manage.py verify_export PATH`: its exit status and what it said."""
    out = io.StringIO()
    try:
        call_command("verify_export", str(path), stdout=out)
    except CommandError as exc:
        return exc.returncode, str(exc)
    return 0, out.getvalue()


def _restamped(pdf: bytes, **fields: str) -> bytes:
    """The PDF rewritten with some metadata entries changed."""
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf)))
    writer.add_metadata({f"/{name}": value for name, value in fields.items()})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@pytest.fixture
def history() -> dict[str, Any]:
    """A document with three edits, an export of its first and one of its head."""
    users = _users()
    document = _document(users)
    writer = Writer()
    _append(document, users["olga"], writer.paragraph("The original wording."))
    _append(document, users["ed"], writer.paragraph("A second paragraph."))
    _append(document, users["olga"], writer.paragraph("A third, added later."))
    return {
        "users": users,
        "document": document,
        "old": _exported(document, users["olga"], 1),
        "head": _exported(document, users["ed"], 3),
    }


def test_a_pdf_of_an_old_seq_names_it_and_verifies(history: dict[str, Any], tmp_path: Path) -> None:
    document, export = history["document"], history["old"]
    pdf = export.file.read()
    chain = chain_hash_at(document_id=document.id, seq=1).hex()
    info = PdfReader(io.BytesIO(pdf)).metadata
    assert info is not None
    assert info["/palimpsestdocument"] == str(document.id)
    assert (info["/palimpsestseq"], info["/palimpsestchainhash"]) == ("1", chain)
    assert info["/palimpsestexport"] == str(export.id)
    assert chain in info["/Subject"]
    # The footer says the same on every page.
    pages = PdfReader(io.BytesIO(pdf)).pages
    footer = re.sub(r"\s+", "", "".join(page.extract_text() for page in pages))
    assert str(document.id) in footer and "afteredit1" in footer and chain in footer
    assert export.sha256 == hashlib.sha256(pdf).hexdigest()

    path = tmp_path / "old.pdf"
    path.write_bytes(pdf)
    code, said = _verify(path)
    assert code == 0 and "after edit 1" in said, said
    # The head's export, made later from later edits, verifies as well.
    path.write_bytes(history["head"].file.read())
    assert _verify(path)[0] == 0


def test_an_altered_stamp_or_altered_bytes_do_not_verify(
    history: dict[str, Any], tmp_path: Path
) -> None:
    pdf = history["old"].file.read()
    path = tmp_path / "changed.pdf"
    head_chain = chain_hash_at(document_id=history["document"].id, seq=3).hex()
    cases = {
        "a later seq": _restamped(pdf, palimpsestseq="3"),
        "a later seq with its own hash": _restamped(
            pdf, palimpsestseq="3", palimpsestchainhash=head_chain
        ),
        "another hash": _restamped(pdf, palimpsestchainhash="00" * 32),
        "a malformed seq": _restamped(pdf, palimpsestseq="one"),
        "bytes appended": pdf + b"%\n",
        "rewritten, stamp kept": _restamped(pdf),
    }
    for name, changed in cases.items():
        path.write_bytes(changed)
        code, said = _verify(path)
        assert code == 1, f"{name}: {code} {said}"
        assert said.startswith("ALTERED"), said


def test_an_edited_event_in_the_log_fails_the_export_it_is_under(
    history: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "old.pdf"
    path.write_bytes(history["old"].file.read())
    Event.objects.filter(document=history["document"], seq=1).update(update=b"\x00\x00")
    code, said = _verify(path)
    assert code == 1 and "the log was altered" in said and "seq 1" in said, said


def test_unknown_documents_exports_and_files_exit_2(
    history: dict[str, Any], tmp_path: Path
) -> None:
    pdf = history["old"].file.read()
    path = tmp_path / "other.pdf"
    for changed in (
        _restamped(pdf, palimpsestdocument=str(uuid.uuid4())),
        _restamped(pdf, palimpsestexport=str(uuid.uuid4())),
        html_to_pdf("<p>not from here</p>"),
        b"not a pdf at all",
    ):
        path.write_bytes(changed)
        code, said = _verify(path)
        assert code == 2 and said.startswith("UNKNOWN"), said
    assert _verify(tmp_path / "missing.pdf")[0] == 2


def test_the_admin_checks_an_uploaded_file(history: dict[str, Any]) -> None:
    pdf = history["old"].file.read()
    url = "/admin/tasks/export/verify/"
    staff = get_user_model().objects.create_superuser("root", password="pw")
    client = Client()
    assert client.get(url).status_code == 302  # to the login page
    client.force_login(history["users"]["olga"])  # a member, not staff
    assert client.get(url).status_code == 302
    client.force_login(staff)
    assert "Verify a PDF" in client.get("/admin/tasks/export/").content.decode()
    shown = client.post(url, {"file": io.BytesIO(pdf)}).content.decode()
    assert "<strong>Matches</strong>" in shown, shown
    upload = io.BytesIO(pdf + b"%\n")
    upload.name = "changed.pdf"
    shown = client.post(url, {"file": upload}).content.decode()
    assert "<strong>Altered</strong>" in shown and "bytes differ" in shown


def test_the_api_shows_the_files_digest(history: dict[str, Any]) -> None:
    export = history["head"]
    assert services.export_public(export)["sha256"] == export.sha256
    assert len(export.sha256) == 64


def test_an_export_of_a_log_broken_before_its_seq_fails_with_the_reason(
    history: dict[str, Any],
) -> None:
    document, users = history["document"], history["users"]
    Event.objects.filter(document=document, seq=2).delete()
    export = Export.objects.create(document=document, requested_by=users["olga"], at_seq=3)
    state = services.export_read_state(export_id=str(export.id))
    with pytest.raises(services.ExportFailed, match="does not check out up to edit 3"):
        services.export_render_html(export_id=str(export.id), state=state)
