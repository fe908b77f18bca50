"""Time travel over the event log: history pages, the document after any event, restore.

Reads are bounded: a snapshot is kept every PALIMPSEST_CHECKPOINT_EVENTS events
(`checkpoints_fill`), so the document after any event is one snapshot plus at most that many
events. The log is never rewritten; a restore appends an ordinary event.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models.functions import Length
from pycrdt import Doc

from collab.models import Document, Version
from collab.notify import publish
from collab.permissions import Action, check
from collab.sync.attribution import Attribution, Change, attribute, authored_diff
from collab.sync.html import document_text, fragment_html
from collab.sync.restore import content_doc, restore_update
from collab.text import printable_text
from events.models import Event, EventKind, Snapshot
from events.selectors import document_head, document_replay
from events.services import NewEvent, event_append_batch, snapshot_compact

HISTORY_PAGE_MAX = 1000
# Full-log results kept per process (attribution at a seq, a diff between two).
FULL_REPLAY_RESULTS_KEPT = 16

T = TypeVar("T")


class NoSuchSeq(ValueError):
    """The document has no event with that seq."""


class Busy(RuntimeError):
    """As many full-log replays as allowed already run in this process; ask again shortly."""

    retry_after_s = 5


class _FullReplays:
    """Caps the full-log replays running at once and keeps their newest results.

    Attribution and diffs replay a document's log from its first event (a snapshot keeps no
    authorship), ~10 s for 137k events: without a cap any reader could hold every worker
    thread. The events up to a seq never change, so a result stays right for good.
    """

    def __init__(self, keep: int) -> None:
        self._lock = threading.Lock()
        self._running = 0
        self._keep = keep
        self._results: OrderedDict[tuple[Any, ...], Any] = OrderedDict()

    def run(self, key: tuple[Any, ...], compute: Callable[[], T]) -> T:
        """The kept result for `key`, or `compute()` in a free slot; Busy when none is free."""
        with self._lock:
            if key in self._results:
                self._results.move_to_end(key)
                result: T = self._results[key]
                return result
            if self._running >= settings.PALIMPSEST_HISTORY_REPLAYS:
                raise Busy("the server is busy replaying document histories; try again shortly")
            self._running += 1
        try:
            result = compute()
        finally:
            with self._lock:
                self._running -= 1
        with self._lock:
            self._results[key] = result
            while len(self._results) > self._keep:
                self._results.popitem(last=False)
        return result


_full_replays = _FullReplays(FULL_REPLAY_RESULTS_KEPT)


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One event as the history shows it."""

    seq: int
    actor: str | None
    created_at: datetime
    size: int
    kind: str


@dataclass(frozen=True, slots=True)
class Content:
    """The document right after event `seq`."""

    seq: int
    html: str
    text: str


def document_history(
    *, document_id: uuid.UUID, after: int = 0, limit: int = 100
) -> list[HistoryEntry]:
    """Events after seq `after`, oldest first, at most `limit` (capped at HISTORY_PAGE_MAX).

    NoSuchSeq when `after` is past the latest event: a caller paging on a wrong document or a
    stale cursor learns so rather than seeing an empty, finished history.
    """
    _checked_seq(document_id, after)
    rows = (
        Event.objects.filter(document_id=document_id, seq__gt=after)
        .order_by("seq")
        .annotate(size=Length("update"))
        .values_list("seq", "actor__username", "created_at", "size", "kind")[
            : max(1, min(limit, HISTORY_PAGE_MAX))
        ]
    )
    return [HistoryEntry(*row) for row in rows]


def _checked_seq(document_id: uuid.UUID, at_seq: int | None) -> int:
    """`at_seq` if the document has that event (0: before any edit), else the head."""
    head = document_head(document_id=document_id)
    if at_seq is None:
        return head
    if not 0 <= at_seq <= head:
        raise NoSuchSeq(f"seq must be between 0 and {head}, the latest")
    return at_seq


def document_at(*, document_id: uuid.UUID, at_seq: int | None = None) -> tuple[Doc, int]:
    """The document right after event `at_seq` (default: the latest) and that seq."""
    seq = _checked_seq(document_id, at_seq)
    replay = document_replay(document_id=document_id, at_seq=seq)
    return content_doc(replay.updates), seq


def document_content(*, document_id: uuid.UUID, at_seq: int | None = None) -> Content:
    """HTML and plain text of the document right after event `at_seq`."""
    doc, seq = document_at(document_id=document_id, at_seq=at_seq)
    return Content(seq=seq, html=fragment_html(doc), text=document_text(doc))


def checkpoints_fill(*, document_id: uuid.UUID, every: int | None = None) -> int:
    """Add snapshots so no two (nor 0 and the head) are more than `every` seqs apart.

    Rooms already compact every PALIMPSEST_COMPACT_TAIL_EVENTS events; this covers logs
    written otherwise (imports, long offline syncs, a beat sweep over a long tail). Returns
    how many snapshots were written.
    """
    every = every or settings.PALIMPSEST_CHECKPOINT_EVENTS
    head = document_head(document_id=document_id)
    have = sorted(
        Snapshot.objects.filter(document_id=document_id).values_list("upto_seq", flat=True)
    )
    made = 0
    previous = 0
    for bound in [*have, head]:
        # In order: each one starts from the snapshot before it, so this is linear in the log.
        while bound - previous > every:
            previous += every
            if snapshot_compact(document_id=document_id, upto_seq=previous):
                made += 1
        previous = max(previous, bound)
    return made


@dataclass(frozen=True, slots=True)
class Burst:
    """Consecutive events by one author with no long pause between them."""

    actor: str | None
    first_seq: int
    last_seq: int
    started_at: datetime
    ended_at: datetime
    events: int
    restores: int


def document_bursts(
    *, document_id: uuid.UUID, before: int | None = None, window: int = 5000, pause_s: int = 120
) -> list[Burst]:
    """The `window` events before seq `before` (default: all latest) grouped into bursts,
    newest first."""
    events = Event.objects.filter(document_id=document_id)
    if before is not None:
        events = events.filter(seq__lt=before)
    rows = list(
        events.order_by("-seq").values_list("seq", "actor__username", "created_at", "kind")[:window]
    )
    rows.reverse()
    bursts: list[Burst] = []
    for seq, actor, created_at, kind in rows:
        last = bursts[-1] if bursts else None
        restore = int(kind == EventKind.RESTORE)
        if (
            last is not None
            and last.actor == actor
            and not restore
            and not last.restores
            and (created_at - last.ended_at).total_seconds() <= pause_s
        ):
            bursts[-1] = Burst(
                actor, last.first_seq, seq, last.started_at, created_at, last.events + 1, 0
            )
        else:
            bursts.append(Burst(actor, seq, seq, created_at, created_at, 1, restore))
    bursts.reverse()
    return bursts


def document_restore(
    *, document: Document, by: User, seq: int, operator: bool = False
) -> int | None:
    """Append an event bringing the content back to how it was after `seq`; its seq.

    None when the content already is that. Owners and editors may; the rooms with the document
    open apply the new event and relay it to everyone connected.
    """
    check(user=by, document_id=document.id, action=Action.RESTORE, operator=operator)
    with transaction.atomic():
        # Lock the document first (SQLite: the IMMEDIATE begin already holds the write lock):
        # appenders wait, so the update is computed against the head it is appended after,
        # and a second restore to the same seq sees the first and appends nothing.
        list(Document.objects.select_for_update().filter(pk=document.pk).values_list("pk"))
        seq = _checked_seq(document.id, seq)
        current = document_replay(document_id=document.id)
        target = document_replay(document_id=document.id, at_seq=seq)
        update = restore_update(current.updates, target.updates)
        if not update:
            return None
        (new_seq,) = event_append_batch(
            items=[
                NewEvent(
                    document_id=document.id, update=update, actor_id=by.pk, kind=EventKind.RESTORE
                )
            ]
        )
        publish(
            {
                "type": "document.restored",
                "document": str(document.id),
                "seq": new_seq,
                "restored_to": seq,
                "by": by.get_username(),
            },
            document_id=document.id,
            room_message={"type": "doc.catchup"},
        )
    return new_seq


def version_create(
    *, document: Document, by: User, seq: int, label: str, operator: bool = False
) -> Version:
    """Name the document as it was after `seq`; owners and editors may."""
    check(user=by, document_id=document.id, action=Action.RESTORE, operator=operator)
    label = printable_text(label.strip(), what="a version's label")
    if not 1 <= len(label) <= 200:
        raise ValueError("a version's label has 1 to 200 characters")
    return Version.objects.create(
        document=document, seq=_checked_seq(document.id, seq), label=label, created_by=by
    )


@dataclass(frozen=True, slots=True)
class AuthoredText:
    """Who wrote each part of the document right after event `seq`."""

    seq: int
    text: str
    # (username, text) in document order; None: a block separator, or a deleted account.
    runs: list[tuple[str | None, str]]
    # (username, characters of `text` they inserted), most first.
    authors: list[tuple[str | None, int]]


@dataclass(frozen=True, slots=True)
class AuthoredChange:
    """A run of a diff: inserted, deleted or kept text, and who inserted or deleted it."""

    op: str
    text: str
    author: str | None
    # The newest event among the run's characters (None for kept text).
    seq: int | None


def _actor_events(document_id: uuid.UUID, upto_seq: int) -> Iterator[tuple[int, int | None, bytes]]:
    """(seq, actor id, update) of events 1..upto_seq, streamed in order."""
    rows = (
        Event.objects.filter(document_id=document_id, seq__lte=upto_seq)
        .order_by("seq")
        .values_list("seq", "actor_id", "update")
    )
    for seq, actor, update in rows.iterator(chunk_size=5000):
        yield seq, actor, bytes(update)


def _usernames(actor_ids: Iterable[int | None]) -> dict[int | None, str | None]:
    """Actor id -> username; None (and accounts since deleted) map to None."""
    ids = {pk for pk in actor_ids if pk is not None}
    names: dict[int | None, str | None] = dict(
        User.objects.filter(pk__in=ids).values_list("pk", "username")
    )
    return {pk: names.get(pk) for pk in [*ids, None]}


def document_attribution(*, document_id: uuid.UUID, at_seq: int | None = None) -> AuthoredText:
    """Who wrote each part of the document right after event `at_seq` (default: now).

    Authors are the actors the server stamped on the events. Replays the log from its first
    event (a snapshot keeps no authorship): 1.2 s for 40k events, 12 s for 137k here; Busy
    when PALIMPSEST_HISTORY_REPLAYS replays already run, unless the result is kept.
    """
    seq = _checked_seq(document_id, at_seq)
    result: Attribution = _full_replays.run(
        ("attribution", uuid.UUID(str(document_id)), seq),
        lambda: attribute(_actor_events(document_id, seq)),
    )
    names = _usernames(result.counts)
    runs: list[tuple[str | None, str]] = []
    for actor, text in result.runs:
        name = names.get(actor)
        if runs and runs[-1][0] == name:  # two ids of one name: a deleted account and None
            runs[-1] = (name, runs[-1][1] + text)
        else:
            runs.append((name, text))
    counts: dict[str | None, int] = {}
    for actor, chars in result.counts.items():
        counts[names.get(actor)] = counts.get(names.get(actor), 0) + chars
    authors = sorted(counts.items(), key=lambda item: (-item[1], item[0] or ""))
    return AuthoredText(seq=seq, text=result.text, runs=runs, authors=authors)


def document_diff(*, document_id: uuid.UUID, from_seq: int, to_seq: int) -> list[AuthoredChange]:
    """What changed from the document after `from_seq` to the one after `to_seq`, by author.

    Replays the log up to `to_seq` (as `document_attribution`, and Busy likewise).
    """
    start = _checked_seq(document_id, from_seq)
    end = _checked_seq(document_id, to_seq)
    if end < start:
        raise ValueError("the second seq must not come before the first")
    changes: list[Change] = _full_replays.run(
        ("diff", uuid.UUID(str(document_id)), start, end),
        lambda: authored_diff(_actor_events(document_id, end), start, end),
    )
    names = _usernames(change.author for change in changes)
    return [
        AuthoredChange(op=c.op, text=c.text, author=names.get(c.author), seq=c.seq) for c in changes
    ]


def document_versions(*, document_id: uuid.UUID) -> list[Version]:
    """The document's named versions, oldest seq first."""
    return list(Version.objects.filter(document_id=document_id).select_related("created_by"))
