"""Reading the past: history pages, the document and its authors after any event, diffs.

Reads are bounded: snapshots are spaced by cost (`events.compaction.checkpoints_fill`), so the
document after any event is one snapshot plus at most PALIMPSEST_CHECKPOINT_MAX_EVENTS
events; attribution and diffs start from an authorship checkpoint (`events.authorship`).
Events are read through `events.log`, packed or not. Restores and named versions are written
in `events.restore`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.contrib.auth.models import User
from pycrdt import Doc

from collab.models import Version
from collab.sync.attribution import Attribution, Change, diff_from_pieces, diff_onward
from collab.sync.html import document_text, fragment_html
from collab.sync.restore import content_doc
from events.authorship import actor_events, deletions_between, replay_at
from events.log import read_log
from events.models import EventKind
from events.replays import full_replays
from events.selectors import document_head, document_replay

HISTORY_PAGE_MAX = 1000


class NoSuchSeq(ValueError):
    """The document has no event with that seq."""


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
    checked_seq(document_id, after)
    upto = after + max(1, min(limit, HISTORY_PAGE_MAX))
    events = list(read_log(document_id, after=after, upto=upto))
    names = _usernames(e.actor_id for e in events)
    return [
        HistoryEntry(e.seq, names[e.actor_id], e.created_at, len(e.update), e.kind) for e in events
    ]


def checked_seq(document_id: uuid.UUID, at_seq: int | None) -> int:
    """`at_seq` if the document has that event (0: before any edit), else the head."""
    head = document_head(document_id=document_id)
    if at_seq is None:
        return head
    if not 0 <= at_seq <= head:
        raise NoSuchSeq(f"seq must be between 0 and {head}, the latest")
    return at_seq


def document_at(*, document_id: uuid.UUID, at_seq: int | None = None) -> tuple[Doc, int]:
    """The document right after event `at_seq` (default: the latest) and that seq."""
    seq = checked_seq(document_id, at_seq)
    replay = document_replay(document_id=document_id, at_seq=seq)
    return content_doc(replay.updates), seq


@dataclass(frozen=True, slots=True)
class State:
    """The document right after event `seq` as one Yjs update, and the log's head then."""

    seq: int
    head: int
    update: bytes


def document_state(*, document_id: uuid.UUID, at_seq: int | None = None) -> State:
    """The Yjs state right after event `at_seq` (default: now), for a read-only editor."""
    doc, seq = document_at(document_id=document_id, at_seq=at_seq)
    # Read after the replay: the head never moves back, so it is at least `seq`.
    return State(seq=seq, head=document_head(document_id=document_id), update=doc.get_update())


def document_content(*, document_id: uuid.UUID, at_seq: int | None = None) -> Content:
    """HTML and plain text of the document right after event `at_seq`."""
    doc, seq = document_at(document_id=document_id, at_seq=at_seq)
    return Content(seq=seq, html=fragment_html(doc), text=document_text(doc))


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
    end = document_head(document_id=document_id) if before is None else before - 1
    events = list(read_log(document_id, after=max(0, end - window), upto=end))
    names = _usernames(e.actor_id for e in events)
    bursts: list[Burst] = []
    for seq, actor, created_at, kind in (
        (e.seq, names[e.actor_id], e.created_at, e.kind) for e in events
    ):
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


def _usernames(actor_ids: Iterable[int | None]) -> dict[int | None, str | None]:
    """Actor id -> username; None (and accounts since deleted) map to None."""
    ids = {pk for pk in actor_ids if pk is not None}
    names: dict[int | None, str | None] = dict(
        User.objects.filter(pk__in=ids).values_list("pk", "username")
    )
    return {pk: names.get(pk) for pk in [*ids, None]}


def document_attribution(*, document_id: uuid.UUID, at_seq: int | None = None) -> AuthoredText:
    """Who wrote each part of the document right after event `at_seq` (default: now).

    Authors are the actors the server stamped on the events. Restores the authorship
    checkpoint before `at_seq` and replays the events after it; Busy when
    PALIMPSEST_HISTORY_REPLAYS replays already run, unless the result is kept.
    """
    seq = checked_seq(document_id, at_seq)
    result: Attribution = full_replays.run(
        ("attribution", uuid.UUID(str(document_id)), seq),
        lambda: replay_at(uuid.UUID(str(document_id)), seq, by_author=True)[0].attribution(),
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

    From the authorship checkpoint before `from_seq` on, in one replay when `to_seq` is
    near; otherwise the documents at both seqs from their own checkpoints, with the deletions
    the checkpoints between them recorded (as `document_attribution`, and Busy likewise).
    """
    start = checked_seq(document_id, from_seq)
    end = checked_seq(document_id, to_seq)
    if end < start:
        raise ValueError("the second seq must not come before the first")
    changes: list[Change] = full_replays.run(
        ("diff", uuid.UUID(str(document_id)), start, end),
        lambda: _diff(uuid.UUID(str(document_id)), start, end),
    )
    names = _usernames(change.author for change in changes)
    return [
        AuthoredChange(op=c.op, text=c.text, author=names.get(c.author), seq=c.seq) for c in changes
    ]


def _diff(document_id: uuid.UUID, start: int, end: int) -> list[Change]:
    """`document_diff` computed (see there).

    Near seqs: one replay to `start`, each author's run of events at once (only what changes
    after `start` is dated), then event by event to `end`. Far ones: both documents from
    their own checkpoints, event by event, so that ids match (`diff_from_pieces`).
    """
    if end - start <= settings.PALIMPSEST_AUTHOR_CHECKPOINT_EVENTS:
        before, _ = replay_at(document_id, start, by_author=True)
        return diff_onward(before, actor_events(document_id, start, end))
    before, _ = replay_at(document_id, start)
    after, later = replay_at(document_id, end)
    if later <= start:  # no checkpoint between: `after` replayed the very same events
        return diff_onward(before, actor_events(document_id, start, end))
    return diff_from_pieces(before, after, deletions_between(document_id, start, later))


def document_versions(*, document_id: uuid.UUID) -> list[Version]:
    """The document's named versions, oldest seq first."""
    return list(Version.objects.filter(document_id=document_id).select_related("created_by"))
