"""Tamper evidence: rows edited or deleted behind the app's back break the hash chain."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from collab.models import Document
from collab.services import document_create
from events.chain import event_hash
from events.compaction import snapshot_compact
from events.integrity import Break, chain_verify
from events.models import Event
from events.services import (
    HeadMoved,
    NewEvent,
    SqliteDirectAppender,
    event_append_batch,
)
from events.storage import LogWriter
from tests.ytest import sample_update

pytestmark = pytest.mark.django_db(transaction=True)


def _events(document: Document, count: int, *, actor: Any = None) -> list[NewEvent]:
    return [
        NewEvent(
            document_id=document.id,
            update=sample_update(f"edit {i}"),
            actor_id=actor.pk if actor else None,
            yjs_client_id=1000 + i,
        )
        for i in range(count)
    ]


def _log(count: int = 6) -> tuple[Document, Document, Any]:
    """Two documents with `count` events each, appended in mixed batches; and a second user."""
    owner = get_user_model().objects.create_user(username="owner")
    other = get_user_model().objects.create_user(username="other")
    a = document_create(owner=owner, title="a")
    b = document_create(owner=owner, title="b")
    first, rest = _events(a, count, actor=owner), _events(b, count)
    event_append_batch(items=first[:2] + rest[:3])
    for i in range(2, count):
        event_append_batch(items=[first[i], *rest[i + 1 : i + 2]])
    return a, b, other


def _verify(*documents: Document) -> str:
    """verify_log's output; CommandError if a chain is broken."""
    out = io.StringIO()
    call_command("verify_log", *[str(d.id) for d in documents], stdout=out)
    return out.getvalue()


def _broken(*documents: Document) -> tuple[CommandError, str]:
    """The error and output of a verify_log that must fail."""
    out = io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("verify_log", *[str(d.id) for d in documents], stdout=out)
    return caught.value, out.getvalue()


def _sql(statement: str, params: list[Any]) -> None:
    """Run SQL on the event table directly, as someone with database access would."""
    table = connection.ops.quote_name(Event._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(statement.format(table=table), params)


def _pk(document: Document, seq: int) -> int:
    return Event.objects.values_list("pk", flat=True).get(document=document, seq=seq)


def _set(column: str, value: Any) -> Callable[[Document, int], None]:
    def tamper(document: Document, seq: int) -> None:
        prepared = value
        if column == "created_at":  # as the database takes it (SQLite: naive UTC text)
            prepared = Event._meta.get_field(column).get_db_prep_value(value, connection)
        name = connection.ops.quote_name(column)
        _sql(f"UPDATE {{table}} SET {name} = %s WHERE id = %s", [prepared, _pk(document, seq)])

    return tamper


def _delete(document: Document, seq: int) -> None:
    _sql("DELETE FROM {table} WHERE id = %s", [_pk(document, seq)])


def test_an_untouched_log_verifies() -> None:
    a, b, _ = _log()
    assert _verify() == "2 documents, 12 events: chain intact\n"
    assert _verify(a) == "1 document, 6 events: chain intact\n"
    assert chain_verify(document_id=b.id).intact


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (_set("update", sample_update("forged")), Break.EDITED),
        (_set("actor_id", None), Break.EDITED),
        (_set("yjs_client_id", 1), Break.EDITED),
        (_set("kind", "restore"), Break.EDITED),
        (_set("created_at", datetime(2020, 1, 1, tzinfo=UTC)), Break.EDITED),
        (_set("hash", bytes(32)), Break.EDITED),
        (_delete, Break.MISSING),
    ],
    ids=["update", "actor", "client", "kind", "time", "hash", "deleted"],
)
def test_a_row_changed_behind_the_apps_back_is_named(
    tamper: Callable[[Document, int], None], reason: Break
) -> None:
    a, b, _ = _log()
    tamper(a, 3)
    error, out = _broken()
    assert f"{a.id} at seq 3" in str(error) and str(b.id) not in str(error)
    assert error.returncode == 1
    assert out.startswith(f"{a.id}: broken at seq 3 ({reason})")
    report = chain_verify(document_id=a.id)
    assert (report.broken_seq, report.reason, report.events) == (3, reason, 2)
    assert chain_verify(document_id=b.id).intact


def test_the_actor_swapped_for_another_user_is_caught() -> None:
    a, _, other = _log()
    _set("actor_id", other.pk)(a, 3)
    error, _ = _broken(a)
    assert f"{a.id} at seq 3" in str(error)


def test_the_first_broken_link_is_named() -> None:
    a, _, other = _log()
    _set("actor_id", other.pk)(a, 5)
    assert f"{a.id} at seq 5" in str(_broken(a)[0])
    _set("update", b"\x00")(a, 2)
    assert f"{a.id} at seq 2" in str(_broken(a)[0])


def test_a_missing_first_event_is_named() -> None:
    a, _, _ = _log()
    _delete(a, 1)
    report = chain_verify(document_id=a.id)
    assert (report.broken_seq, report.reason) == (1, Break.MISSING)
    assert "seq 1 is missing" in report.detail


def test_a_row_rewritten_with_a_matching_hash_breaks_the_next_link() -> None:
    a, _, other = _log()
    row = Event.objects.get(document=a, seq=2)
    prev = bytes(Event.objects.get(document=a, seq=1).hash)
    forged = event_hash(
        prev,
        document_id=a.id,
        seq=2,
        kind=row.kind,
        actor_id=other.pk,
        yjs_client_id=row.yjs_client_id,
        created_at=row.created_at,
        update=bytes(row.update),
    )
    _sql("UPDATE {table} SET actor_id = %s, hash = %s WHERE id = %s", [other.pk, forged, row.pk])
    assert f"{a.id} at seq 3" in str(_broken(a)[0])


def test_a_cut_tail_is_seen_by_the_recorded_head_or_below_a_snapshot() -> None:
    a, b, _ = _log()
    # The newest event deleted: the document's recorded head still names it.
    _delete(b, 6)
    report = chain_verify(document_id=b.id)
    assert (report.broken_seq, report.reason) == (6, Break.TRUNCATED), report
    assert "recorded head is seq 6" in report.detail
    # Deleted and the head rewritten to match: a valid shorter chain, unless a snapshot
    # covers the deleted seqs (only an anchor outside the database would show the rest).
    assert snapshot_compact(document_id=a.id) is not None
    _delete(a, 6)
    _delete(a, 5)
    head4 = Event.objects.values_list("hash", flat=True).get(document=a, seq=4)
    Document.objects.filter(pk=a.pk).update(head_seq=4, head_hash=head4)
    report = chain_verify(document_id=a.id)
    assert (report.broken_seq, report.reason) == (5, Break.TRUNCATED)
    assert f"{a.id} at seq 5" in str(_broken(a)[0])


def test_unknown_documents_are_refused() -> None:
    unknown = uuid.uuid4()
    with pytest.raises(CommandError, match=str(unknown)) as caught:
        call_command("verify_log", str(unknown), stdout=io.StringIO())
    assert caught.value.returncode == 2
    with pytest.raises(CommandError, match="not a document id: 'nope'"):
        call_command("verify_log", "nope", stdout=io.StringIO())


@pytest.mark.parametrize("microsecond", [0, 1, 999_999])
def test_the_stamp_reads_back_as_it_was_hashed(
    monkeypatch: pytest.MonkeyPatch, microsecond: int
) -> None:
    stamp = datetime(2026, 11, 22, 3, 49, 7, microsecond, tzinfo=UTC)
    owner = get_user_model().objects.create_user(username="owner")
    documents = [document_create(owner=owner, title=str(i)) for i in range(3)]
    monkeypatch.setattr("events.services.timezone.now", lambda: stamp)
    # Several events and several documents in one batch, then one more on top.
    batch = [e for d in documents for e in _events(d, 3, actor=owner)]
    assert event_append_batch(items=batch) == [1, 2, 3] * 3
    assert event_append_batch(items=_events(documents[1], 1)) == [4]
    assert set(Event.objects.values_list("created_at", flat=True)) == {stamp}
    assert _verify() == "3 documents, 10 events: chain intact\n"


def test_the_direct_sqlite_appender_chains_as_the_batch_path_does() -> None:
    if connection.vendor != "sqlite":
        pytest.skip("the direct appender exists only on SQLite")
    owner = get_user_model().objects.create_user(username="owner")
    a = document_create(owner=owner, title="a")
    b = document_create(owner=owner, title="b")
    settings = connection.settings_dict
    direct = SqliteDirectAppender(str(settings["NAME"]), settings["OPTIONS"]["init_command"])
    try:
        assert direct.append(_events(a, 2) + _events(b, 1)) == [1, 2, 1]
        assert event_append_batch(items=_events(a, 2, actor=owner)) == [3, 4]
        assert direct.append(_events(a, 1, actor=owner) + _events(b, 2)) == [5, 2, 3]
    finally:
        direct.close()
    assert _verify() == "2 documents, 8 events: chain intact\n"


def test_postgres_appends_from_the_loop_chain_and_yield_to_other_writers() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("the event loop's appender exists only on PostgreSQL")
    owner = get_user_model().objects.create_user(username="owner")
    a = document_create(owner=owner, title="a")
    b = document_create(owner=owner, title="b")
    log = LogWriter()
    fast = log._fast
    assert fast is not None and log.appends_async

    def from_loop(events: list[NewEvent]) -> list[int] | None:
        return asyncio.run(log.append_async(events))

    try:
        # No head cached: read under the rows' locks (and cached).
        assert from_loop(_events(a, 1)) == [1]
        assert log.append(_events(a, 1) + _events(b, 1)) == [2, 1]  # the writer thread's path
        # Both cached: one round trip, no read.
        assert from_loop(_events(a, 2, actor=owner) + _events(b, 1)) == [3, 4, 2]
        assert Document.objects.get(pk=a.pk).head_seq == 4
        # Another writer (a restore, another process) appends to a: a cached head is stale,
        # the INSERT meets the unique key and nothing of the batch is written.
        assert event_append_batch(items=_events(a, 1)) == [5]
        with pytest.raises(HeadMoved):
            asyncio.run(fast.append_cached(_events(a, 1) + _events(b, 1), dict(log._heads)))
        assert Event.objects.filter(document=b).count() == 2
        # Through the writer's surface the batch goes on under the locks.
        assert from_loop(_events(a, 1) + _events(b, 1)) == [6, 3]
        assert from_loop(_events(b, 1)) == [4]
        # A document deleted while its edits were queued: declined (the writer thread's
        # append refuses it), and the loop's path stays in use for the others.
        gone = document_create(owner=owner, title="gone")
        Document.objects.filter(pk=gone.pk).delete()
        assert from_loop(_events(gone, 1)) is None
        assert log._fast_paused_until == 0.0
    finally:
        asyncio.run(log.aclose())
        log.close()
    assert Document.objects.get(pk=b.pk).head_seq == 4
    assert _verify() == "2 documents, 10 events: chain intact\n"


def test_the_migration_backfills_existing_logs() -> None:
    owner = get_user_model().objects.create_user(username="owner")
    a = document_create(owner=owner, title="a")
    b = document_create(owner=owner, title="b")
    before = ("events", "0003_snapshot_duration_ms_snapshot_events_folded_and_more")
    executor = MigrationExecutor(connection)
    executor.migrate([before])
    try:
        old = MigrationExecutor(connection).loader.project_state(before).apps
        OldEvent = old.get_model("events", "Event")
        OldEvent.objects.bulk_create(
            OldEvent(
                document_id=document.id,
                seq=seq,
                update=sample_update(str(seq)),
                actor_id=owner.pk if seq % 2 else None,
                yjs_client_id=seq if seq % 3 else None,
                created_at=datetime(2026, 1, 1, 0, 0, seq, seq * 10, tzinfo=UTC),
            )
            for document in (a, b)
            for seq in range(1, 6)
        )
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        # Every app's latest: collab's document heads come after (and from) the hashes.
        executor.migrate(executor.loader.graph.leaf_nodes())
    assert _verify() == "2 documents, 10 events: chain intact\n"
    # New appends go on from the backfilled head.
    assert event_append_batch(items=_events(a, 2)) == [6, 7]
    assert _verify(a) == "1 document, 7 events: chain intact\n"
