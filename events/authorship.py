"""Who wrote what, from authorship checkpoints and the events after them.

A checkpoint (events.models.AuthorCheckpoint) is a replay's authorship after a seq
(collab.sync.attribution.Replay.checkpoint). Attribution at a seq restores the newest one at
or before it onto the document then (a snapshot plus at most a few thousand events) and
replays only the events after it; one every PALIMPSEST_AUTHOR_CHECKPOINT_EVENTS events.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator

from django.conf import settings
from django.db import IntegrityError, transaction

from collab.sync.attribution import CheckpointMismatch, Deletions, Replay, checkpoint_deletions
from collab.sync.restore import content_doc
from events.log import read_log
from events.models import AuthorCheckpoint
from events.selectors import document_replay

logger = logging.getLogger(__name__)


def actor_events(
    document_id: uuid.UUID, after: int, upto: int
) -> Iterator[tuple[int, int | None, bytes]]:
    """(seq, actor id, update) of events after..upto, streamed in order."""
    for event in read_log(document_id, after=after, upto=upto):
        yield event.seq, event.actor_id, event.update


# The most events `replay_at(by_author=True)` applies in one transaction.
_RUN_MAX = 4096


def replay_at(document_id: uuid.UUID, seq: int, *, by_author: bool = False) -> tuple[Replay, int]:
    """The replay right after event `seq` and the checkpoint seq it started from (0: none).

    `by_author`: each run of one actor's consecutive events is applied at once
    (`Replay.apply_run`): the same authors, but characters dated to their run's last seq.
    """
    replay, start = _restored(document_id, seq)
    run: list[tuple[int, bytes]] = []
    run_actor: int | None = None
    for event_seq, actor, update in actor_events(document_id, start, seq):
        if not by_author:
            replay.apply(event_seq, actor, update)
            continue
        if run and (actor != run_actor or len(run) >= _RUN_MAX):
            replay.apply_run(run, run_actor)
            run = []
        run.append((event_seq, update))
        run_actor = actor
    if run:
        replay.apply_run(run, run_actor)
    return replay, start


def deletions_between(document_id: uuid.UUID, after: int, upto: int) -> Deletions:
    """(id, seq, actor) of deletions recorded by the checkpoints in (after, upto]."""
    out: Deletions = []
    rows = AuthorCheckpoint.objects.filter(
        document_id=document_id, upto_seq__gt=after, upto_seq__lte=upto
    ).values_list("data", flat=True)
    for data in rows.iterator(chunk_size=8):
        out.extend(checkpoint_deletions(bytes(data)))
    return out


def _restored(document_id: uuid.UUID, seq: int) -> tuple[Replay, int]:
    """A replay restored from the newest checkpoint at or before `seq`, and that seq."""
    row = (
        AuthorCheckpoint.objects.filter(document_id=document_id, upto_seq__lte=seq)
        .order_by("-upto_seq")
        .values_list("upto_seq", "data")
        .first()
    )
    if row is None:
        return Replay(), 0
    start, data = row
    doc = content_doc(document_replay(document_id=document_id, at_seq=start).updates)
    try:
        return Replay.restore(doc, start, bytes(data)), start
    except CheckpointMismatch as exc:
        # A cache that does not fit is not an answer: replay from the first event instead.
        logger.warning("authorship checkpoint %s@%s unusable: %s", document_id, start, exc)
        return Replay(), 0


def author_checkpoints_fill(*, document_id: uuid.UUID, upto: int) -> int:
    """Add authorship checkpoints every PALIMPSEST_AUTHOR_CHECKPOINT_EVENTS events up to `upto`.

    Continues from the newest one (one replay over the events after it). A seq where an
    update waits on a missing dependency gets none; the next seq does. Returns how many.
    """
    every = settings.PALIMPSEST_AUTHOR_CHECKPOINT_EVENTS
    replay, since = _restored(document_id, upto)
    if upto - since < every:
        return 0
    made = 0
    for seq, actor, update in actor_events(document_id, since, upto):
        replay.apply(seq, actor, update)
        if seq - since < every:
            continue
        blob = replay.checkpoint(since)
        if blob is None:
            continue
        try:
            with transaction.atomic():
                AuthorCheckpoint.objects.create(document_id=document_id, upto_seq=seq, data=blob)
        except IntegrityError:
            return made  # another worker fills this document
        since = seq
        made += 1
    return made
