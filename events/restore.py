"""Writing to the past: restoring an earlier version (a new event) and naming versions.

The log is never rewritten; a restore appends an ordinary event that every open room relays.
"""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import transaction

from collab.limits import LABEL_MAX
from collab.models import Document, Version
from collab.notify import publish
from collab.permissions import Action, check
from collab.sync.restore import restore_update
from collab.text import printable_text
from events.authors import update_claim
from events.history import checked_seq
from events.models import EventKind
from events.selectors import document_replay
from events.services import NewEvent, event_append_batch


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
        list(
            Document.objects.select_for_update(no_key=True).filter(pk=document.pk).values_list("pk")
        )
        seq = checked_seq(document.id, seq)
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
        # The restore writes under a client id of its own: the restorer's from now on.
        update_claim(document_id=document.id, update=update, actor_id=by.pk)
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
    if not 1 <= len(label) <= LABEL_MAX:
        raise ValueError(f"a version's label has 1 to {LABEL_MAX} characters")
    return Version.objects.create(
        document=document, seq=checked_seq(document.id, seq), label=label, created_by=by
    )
