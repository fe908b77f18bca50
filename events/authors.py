"""Who writes under which Yjs client id: claims, and the map the editor colours text by.

Logs written before claims were kept were filled by migration events/0006.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from django.contrib.auth import get_user_model
from django.db import transaction

from collab.sync.colors import author_color
from collab.sync.writers import update_clients
from events.models import ClientAuthor


class Claim(NamedTuple):
    """An account asking to write under a client id of a document."""

    document_id: uuid.UUID
    client_id: int
    actor_id: int | None


def clients_claim(claims: Sequence[Claim]) -> dict[tuple[uuid.UUID, int], int | None]:
    """Claim each free client id for its asker, in one transaction; (document, client id) ->
    the account that owns it now (the asker, or whoever claimed it first; None: a deleted
    account)."""
    with transaction.atomic():
        ClientAuthor.objects.bulk_create(
            [
                ClientAuthor(document_id=c.document_id, client_id=c.client_id, actor_id=c.actor_id)
                for c in claims
            ],
            ignore_conflicts=True,
        )
        rows = ClientAuthor.objects.filter(
            document_id__in={c.document_id for c in claims},
            client_id__in={c.client_id for c in claims},
        ).values_list("document_id", "client_id", "actor_id")
        owners = {(document, client): actor for document, client, actor in rows}
    return {(c.document_id, c.client_id): owners[(c.document_id, c.client_id)] for c in claims}


def client_owners(*, document_id: uuid.UUID) -> dict[int, int | None]:
    """Client id -> the account that owns it, for every id claimed in the document."""
    rows = ClientAuthor.objects.filter(document_id=document_id).values_list("client_id", "actor_id")
    return dict(rows.iterator(chunk_size=2000))


def update_claim(*, document_id: uuid.UUID, update: bytes, actor_id: int | None) -> None:
    """Claim for `actor_id` every client id a server-made update writes under (a restore)."""
    clients = update_clients(update)
    if clients:
        clients_claim([Claim(document_id, client, actor_id) for client in clients])


@dataclass(frozen=True, slots=True)
class ClientAuthorOut:
    """One client id of a document and the account the server stamped on its writes."""

    client_id: int
    author: str | None
    color: str


def document_authors(*, document_id: uuid.UUID) -> list[ClientAuthorOut]:
    """Every client id written under in the document, with its author and caret colour."""
    owners = client_owners(document_id=document_id)
    ids = {actor for actor in owners.values() if actor is not None}
    names: dict[int | None, str] = dict(
        get_user_model().objects.filter(pk__in=ids).values_list("pk", "username")
    )
    return [
        ClientAuthorOut(client_id, names.get(actor), author_color(names.get(actor)))
        for client_id, actor in sorted(owners.items())
    ]
