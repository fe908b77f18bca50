"""The event log's append: seqs per document, transactions, failures that store nothing."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, transaction

from collab.models import Document
from collab.services import document_create
from events import storage
from events.models import Event
from events.services import NewEvent, event_append_batch
from tests.ytest import sample_update

pytestmark = pytest.mark.django_db(transaction=True)


def _event(document_id: uuid.UUID) -> NewEvent:
    return NewEvent(document_id=document_id, update=sample_update(), actor_id=None)


def _seqs(document: Document) -> list[int]:
    return list(Event.objects.filter(document=document).values_list("seq", flat=True))


def test_seqs_count_up_per_document_across_batches() -> None:
    owner = get_user_model().objects.create_user(username="owner")
    a = document_create(owner=owner, title="a")
    b = document_create(owner=owner, title="b")
    assert event_append_batch(items=[_event(a.id), _event(b.id), _event(a.id)]) == [1, 1, 2]
    assert event_append_batch(items=[_event(b.id), _event(a.id)]) == [2, 3]
    assert _seqs(a) == [1, 2, 3] and _seqs(b) == [1, 2]


def test_appends_join_the_callers_transaction() -> None:
    owner = get_user_model().objects.create_user(username="owner")
    document = document_create(owner=owner, title="a")
    with pytest.raises(RuntimeError), transaction.atomic():
        assert event_append_batch(items=[_event(document.id)]) == [1]
        raise RuntimeError("the caller changes its mind")
    assert _seqs(document) == []
    assert event_append_batch(items=[_event(document.id)]) == [1]


def test_a_batch_naming_an_unknown_document_stores_nothing() -> None:
    owner = get_user_model().objects.create_user(username="owner")
    document = document_create(owner=owner, title="a")
    with pytest.raises(Document.DoesNotExist):
        event_append_batch(items=[_event(document.id), _event(uuid.uuid4())])
    assert _seqs(document) == []
    # The connection is left outside any transaction and keeps working.
    assert event_append_batch(items=[_event(document.id)]) == [1]


def test_the_sqlite_wal_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's WAL; the PostgreSQL pass has no such file")
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA journal_size_limit")
        assert cursor.fetchone()[0] == 64 * 1024 * 1024  # a reset WAL is cut to 64 MiB
    owner = get_user_model().objects.create_user(username="owner")
    document = document_create(owner=owner, title="a")
    # Readers kept the WAL from restarting until it passed the threshold: truncated.
    monkeypatch.setattr(storage, "_WAL_TRUNCATE_FRAMES", 10)
    for _ in range(30):
        event_append_batch(items=[_event(document.id) for _ in range(50)])
    wal = Path(str(connection.settings_dict["NAME"]) + "-wal")
    assert wal.stat().st_size > 10 * 4096
    assert storage.checkpoint() > 10
    assert wal.stat().st_size == 0
    assert len(_seqs(document)) == 1500
