"""History at scale: packed segments, cost-spaced snapshots and authorship checkpoints read
exactly as the rows and full replays they replace, and tampering inside a segment is named."""

from __future__ import annotations

import io
import random
import zlib
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client

from collab.sync.attribution import attribute, authored_diff
from events import history
from events.compaction import document_compact, history_compact, log_pack
from events.integrity import Break, ChainBroken, chain_hash_at, chain_verify
from events.log import events_logged, read_updates
from events.models import AuthorCheckpoint, Event, EventSegment, Snapshot
from events.packing import pack, unpack
from events.replays import full_replays
from events.selectors import documents_to_pack
from tests.integration.test_history import Writer, _append, _document, _users

pytestmark = pytest.mark.django_db(transaction=True)

EDITS = 60


@pytest.fixture
def small_pieces(settings: Any) -> None:
    """Segments, snapshots and checkpoints a few events apart, so a short log uses them all."""
    settings.PALIMPSEST_SEGMENT_EVENTS = 4
    settings.PALIMPSEST_CHECKPOINT_MIN_EVENTS = settings.PALIMPSEST_CHECKPOINT_MAX_EVENTS = 8
    settings.PALIMPSEST_AUTHOR_CHECKPOINT_EVENTS = 5
    settings.PALIMPSEST_PACK_GRACE_SECONDS = 3600


def _two_writers(document: Any, users: dict[str, Any]) -> int:
    """Olga and Ed typing, deleting and adding paragraphs in turns; the head seq."""
    writer = Writer()
    rng = random.Random(3)
    _append(document, users["olga"], writer.paragraph("start"))
    seq = 1
    while seq < EDITS:
        user = users["olga"] if (seq // 3) % 2 else users["ed"]
        text = writer.fragment.children[0].children[0]
        length = len(str(text))
        if seq % 11 == 0:
            update = writer.paragraph(f"p{seq}")
        elif length > 3 and rng.random() < 0.3:
            at = rng.randrange(length - 1)
            state = writer.doc.get_state()
            del text[at : at + 2]
            update = writer.doc.get_update(state)
        else:
            update = writer.type(rng.randrange(length + 1), "abcdefghij"[seq % 10])
        seq = _append(document, user, update)
    return seq


def _reads(document: Any, head: int) -> dict[str, Any]:
    """Everything the history shows, at every seq."""
    full_replays._results.clear()
    doc = document.id
    out: dict[str, Any] = {
        "content": [history.document_content(document_id=doc, at_seq=s) for s in range(head + 1)],
        "attribution": [
            history.document_attribution(document_id=doc, at_seq=s) for s in range(head + 1)
        ],
        "diff": [
            history.document_diff(document_id=doc, from_seq=s, to_seq=head) for s in range(head + 1)
        ],
        "short diffs": [
            history.document_diff(document_id=doc, from_seq=s, to_seq=min(head, s + 3))
            for s in range(head + 1)
        ],
        "pages": [history.document_history(document_id=doc, after=a, limit=7) for a in (0, 20)],
        "bursts": history.document_bursts(document_id=doc, before=head - 2, window=25),
    }
    full_replays._results.clear()
    return out


def test_packed_log_and_checkpoints_read_exactly_as_rows_and_full_replays(
    small_pieces: None,
) -> None:
    users = _users()
    document = _document(users)
    head = _two_writers(document, users)
    rows = list(
        Event.objects.filter(document=document)
        .order_by("seq")
        .values_list("seq", "actor_id", "update")
    )
    events = [(seq, actor, bytes(update)) for seq, actor, update in rows]
    hashes = [
        bytes(h)
        for h in Event.objects.filter(document=document)
        .order_by("seq")
        .values_list("hash", flat=True)
    ]
    before = _reads(document, head)  # rows only, replays from the first event

    done = document_compact(document_id=document.id, grace_s=-1)

    assert done.packed.segments == head // 4 and done.packed.rows_deleted == head // 4 * 4
    assert Event.objects.filter(document=document).count() == head % 4
    assert AuthorCheckpoint.objects.filter(document=document).count() >= head // 5 - 1
    assert sorted(Snapshot.objects.values_list("upto_seq", flat=True)) == [
        *range(8, head + 1, 8),
        *([head] if head % 8 else []),
    ]
    after = _reads(document, head)
    for name, value in before.items():
        assert after[name] == value, name
    # And both agree with a replay of the whole log from its first event, one event at a
    # time: the same text, runs and authors, and each diff run's author and seqs.
    names = {u.pk: u.username for u in users.values()}
    for seq in range(head + 1):
        expected = attribute(events, seq)
        got = after["attribution"][seq]
        assert got.text == expected.text
        assert got.runs == [(names.get(a) if a else None, t) for a, t in expected.runs]
        for to_seq, diff in (
            (head, after["diff"][seq]),
            (min(head, seq + 3), after["short diffs"][seq]),
        ):
            exact = authored_diff(events, seq, to_seq)
            assert [(c.op, c.text, c.author, c.seq) for c in diff] == [
                (c.op, c.text, names.get(c.author) if c.author else None, c.seq) for c in exact
            ], (seq, to_seq)
    report = chain_verify(document_id=document.id)
    assert report.intact and report.events == head
    # The chain hash at every seq is still there to stamp (rows) or derive (packed).
    assert [chain_hash_at(document_id=document.id, seq=s) for s in range(1, head + 1)] == hashes
    with pytest.raises(LookupError):
        chain_hash_at(document_id=document.id, seq=head + 1)


def _segment_events(document: Any, first_seq: int) -> tuple[EventSegment, list[Any]]:
    segment = EventSegment.objects.get(document=document, first_seq=first_seq)
    return segment, unpack(bytes(segment.data), first_seq)


def test_a_change_inside_a_segment_is_named_by_its_seq(small_pieces: None) -> None:
    users = _users()
    document = _document(users)
    head = _two_writers(document, users)
    document_compact(document_id=document.id, grace_s=-1)
    segment, events = _segment_events(document, 9)

    # One update byte of seq 11, re-packed with every stored hash prefix kept.
    changed = [*events]
    update = changed[2].update
    changed[2] = changed[2]._replace(update=update[:-1] + bytes([update[-1] ^ 1]))
    EventSegment.objects.filter(pk=segment.pk).update(data=pack(changed))
    report = chain_verify(document_id=document.id)
    assert (report.broken_seq, report.reason) == (11, Break.EDITED)

    # Its actor instead.
    changed = [*events]
    changed[1] = changed[1]._replace(actor_id=users["vi"].pk)
    EventSegment.objects.filter(pk=segment.pk).update(data=pack(changed))
    assert chain_verify(document_id=document.id).broken_seq == 10

    # Two events swapped.
    swapped = [events[0], events[2]._replace(seq=10), events[1]._replace(seq=11), events[3]]
    EventSegment.objects.filter(pk=segment.pk).update(data=pack(swapped))
    assert chain_verify(document_id=document.id).broken_seq == 10

    with pytest.raises(ChainBroken, match="seq 10"):
        chain_hash_at(document_id=document.id, seq=12)

    # The root alone.
    EventSegment.objects.filter(pk=segment.pk).update(data=segment.data, last_hash=bytes(32))
    assert chain_verify(document_id=document.id).broken_seq == 12

    # Bytes that do not decode.
    junk = zlib.compress(b"not a segment")
    EventSegment.objects.filter(pk=segment.pk).update(data=junk, last_hash=segment.last_hash)
    report = chain_verify(document_id=document.id)
    assert (report.broken_seq, report.reason) == (9, Break.EDITED)

    # The whole segment deleted.
    EventSegment.objects.filter(pk=segment.pk).delete()
    report = chain_verify(document_id=document.id)
    assert (report.broken_seq, report.reason) == (9, Break.MISSING)
    assert "9..12" in report.detail and head > 12


def test_rows_stay_until_the_segment_is_older_than_the_grace(small_pieces: None) -> None:
    users = _users()
    document = _document(users)
    head = _two_writers(document, users)
    done = document_compact(document_id=document.id)  # the hour of grace from the fixture
    assert done.packed.segments == head // 4 and done.packed.rows_deleted == 0
    assert Event.objects.filter(document=document).count() == head
    # Both copies exist for a while: each event is read once, from its segment.
    assert [s for s, _ in read_updates(document.id)] == list(range(1, head + 1))
    assert events_logged(document.id) == events_logged() == head
    assert chain_verify(document_id=document.id).intact
    assert log_pack(document_id=document.id, grace_s=-1).rows_deleted == head // 4 * 4
    assert events_logged(document.id) == head


def test_compact_log_migrates_old_logs_with_the_chain_checked(small_pieces: None) -> None:
    users = _users()
    document = _document(users)
    head = _two_writers(document, users)
    expected = [history.document_content(document_id=document.id, at_seq=s) for s in (5, head)]
    # A snapshot as the server wrote them before: uncompressed.
    from pycrdt import Doc

    from events.selectors import document_replay

    doc: Doc = Doc()
    for update in document_replay(document_id=document.id, at_seq=20).updates:
        doc.apply_update(update)
    Snapshot.objects.create(document=document, upto_seq=20, state=doc.get_update())

    out = io.StringIO()
    call_command("compact_log", stdout=out)
    assert f"{head} events, chain intact before" in out.getvalue()
    assert "chain intact after" in out.getvalue()
    assert EventSegment.objects.filter(document=document).count() == head // 4
    got = [history.document_content(document_id=document.id, at_seq=s) for s in (5, head)]
    assert got == expected

    # A broken chain is named and left alone.
    other = _document(users)
    _two_writers(other, users)
    Event.objects.filter(document=other, seq=3).update(update=b"\x00")
    with pytest.raises(CommandError):
        call_command("compact_log", str(other.id), stdout=(out := io.StringIO()))
    assert "not compacted, broken at seq 3" in out.getvalue()
    assert not EventSegment.objects.filter(document=other).exists()


def test_the_admin_shows_packed_segments_and_the_history_of_a_packed_log(
    small_pieces: None,
) -> None:
    users = _users()
    document = _document(users)
    head = _two_writers(document, users)
    document_compact(document_id=document.id, grace_s=-1)
    admin = Client()
    admin.force_login(get_user_model().objects.create_superuser(username="ada", password="pw"))
    listing = admin.get("/admin/events/eventsegment/")
    root = bytes(EventSegment.objects.get(document=document, first_seq=1).last_hash).hex()
    assert listing.status_code == 200 and root in listing.content.decode()
    assert admin.post("/admin/events/eventsegment/add/").status_code == 403
    page = admin.get(f"/admin/collab/document/{document.id}/edits/?seq=6")
    assert page.status_code == 200 and b'data-testid="timeline"' in page.content
    # A member who is not staff sees no admin at all.
    member = Client()
    member.force_login(users["olga"])
    assert member.get("/admin/events/eventsegment/").status_code == 302
    assert head > 8


def test_history_compaction_is_due_by_checkpoints_or_cold_rows(small_pieces: None) -> None:
    users = _users()
    document = _document(users)
    quiet = _document(users)
    head = _two_writers(document, users)
    due = documents_to_pack(author_every=5, segment=4)
    assert due == [document.id]
    # What rooms ask for writes snapshots only; the sweep's history part does the rest.
    done = document_compact(document_id=document.id, history=False)
    assert done.author_checkpoints == 0 and done.packed.segments == 0
    assert not EventSegment.objects.exists() and not AuthorCheckpoint.objects.exists()
    assert documents_to_pack(author_every=5, segment=4) == [document.id]
    authors, packed = history_compact(document_id=document.id, grace_s=-1)
    assert authors >= head // 5 - 1 and packed.segments == head // 4
    assert documents_to_pack(author_every=5, segment=4) == []
    assert quiet.id not in due
