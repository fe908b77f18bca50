"""Who writes under which Yjs client id: claims, and the map the editor colours text by.

Logs written before claims were kept were filled by migration events/0006.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from collab.sync.colors import author_color
from collab.sync.writers import update_clients
from events.models import ClientAuthor


def client_claim(*, document_id: uuid.UUID, client_id: int, actor_id: int | None) -> int | None:
    """The account that owns `client_id` in the document: `actor_id` if it was free (it is
    now claimed for it), else whoever claimed it first (None: a deleted account)."""
    try:
        with transaction.atomic():
            row, _ = ClientAuthor.objects.get_or_create(
                document_id=document_id, client_id=client_id, defaults={"actor_id": actor_id}
            )
    except IntegrityError:  # claimed by another process between the read and the insert
        row = ClientAuthor.objects.get(document_id=document_id, client_id=client_id)
    return row.actor_id


def clients_claim(*, document_id: uuid.UUID, update: bytes, actor_id: int | None) -> None:
    """Claim for `actor_id` every client id a server-made update writes under (a restore)."""
    for client_id in update_clients(update):
        client_claim(document_id=document_id, client_id=client_id, actor_id=actor_id)


@dataclass(frozen=True, slots=True)
class ClientAuthorOut:
    """One client id of a document and the account the server stamped on its writes."""

    client_id: int
    author: str | None
    color: str


def document_authors(*, document_id: uuid.UUID) -> list[ClientAuthorOut]:
    """Every client id written under in the document, with its author and caret colour."""
    rows = list(
        ClientAuthor.objects.filter(document_id=document_id)
        .order_by("client_id")
        .values_list("client_id", "actor_id")
    )
    ids = {actor for _, actor in rows if actor is not None}
    names = dict(get_user_model().objects.filter(pk__in=ids).values_list("pk", "username"))
    out = []
    for client_id, actor in rows:
        name = names.get(actor)
        out.append(ClientAuthorOut(client_id, name, author_color(name)))
    return out
