"""Writes to documents, memberships, tokens and presence: the one place these change."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from collab.limits import TITLE_MAX
from collab.models import ApiToken, Document, Membership, PresenceSession, Role
from collab.notify import publish
from collab.permissions import Action, check
from collab.permissions import NotFound as NotFound  # callers have long found it here
from collab.text import printable_text


def token_digest(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_issue(*, user: User) -> str:
    """Create an API token for `user` and return it; only its digest is kept."""
    token = secrets.token_urlsafe(32)
    ApiToken.objects.create(user=user, digest=token_digest(token), prefix=token[:8])
    return token


@transaction.atomic
def document_create(*, owner: User, title: str) -> Document:
    """Create a document owned by `owner`."""
    document = Document.objects.create(owner=owner, title=printable_text(title, what="a title"))
    Membership.objects.create(document=document, user=owner, role=Role.OWNER)
    return document


def document_rename(*, document: Document, by: User, title: str) -> Document:
    """Give `document` a new title; its owner and editors may."""
    check(user=by, document_id=document.id, action=Action.WRITE)
    title = printable_text(title.strip(), what="a title")
    if not 1 <= len(title) <= TITLE_MAX:
        raise ValueError(f"a title has 1 to {TITLE_MAX} characters")
    document.title = title
    document.save(update_fields=["title", "updated_at"])
    # Every open page of the document shows the new title at once.
    publish(
        {
            "type": "document.renamed",
            "document": str(document.id),
            "title": title,
            "by": by.get_username(),
        },
        document_id=document.id,
    )
    return document


@transaction.atomic
def member_add(*, document: Document, by: User, user: User, role: str) -> Membership:
    """Share `document` with `user` as editor or viewer; only the owner may."""
    check(user=by, document_id=document.id, action=Action.SHARE)
    if role not in (Role.EDITOR, Role.VIEWER):
        raise ValueError("role must be editor or viewer")
    if user.pk == document.owner_id:
        raise ValueError("the owner's role cannot change")
    membership, _ = Membership.objects.update_or_create(
        document=document, user=user, defaults={"role": role}
    )
    _access_changed(document_id=document.id, user_id=user.pk)
    return membership


@transaction.atomic
def member_remove(*, document: Document, by: User, user: User) -> None:
    """Unshare `document` with `user`; only the owner may, and not with themselves."""
    check(user=by, document_id=document.id, action=Action.SHARE)
    if user.pk == document.owner_id:
        raise ValueError("the owner cannot be removed")
    removed, _ = Membership.objects.filter(document=document, user=user).delete()
    if not removed:
        raise NotFound(f"{user.get_username()} is not a member of this document")
    _access_changed(document_id=document.id, user_id=user.pk)


def _access_changed(
    *, document_id: uuid.UUID, user_id: int, ended_session: str | None = None
) -> None:
    """After commit, tell the document's rooms in every process to re-check this user's
    sockets: a demoted member's become read-only, a removed member's are closed (as are
    those of `ended_session`, a browser session that just logged out)."""
    message: dict[str, object] = {"type": "doc.access", "user": user_id}
    if ended_session is not None:
        message["session"] = ended_session
    publish(
        {"type": "access.changed", "document": str(document_id)},
        user_ids=[user_id],
        document_id=document_id,
        room_message=message,
        to_watchers=False,  # the user's own sockets only: nobody else learns of the change
    )


def access_recheck_user(*, user_id: int, ended_session: str | None = None) -> None:
    """Re-check every socket of a user (deactivated, password changed, token revoked, logged
    out), on each document they are a member of."""
    for document_id in Membership.objects.filter(user_id=user_id).values_list(
        "document_id", flat=True
    ):
        _access_changed(document_id=document_id, user_id=user_id, ended_session=ended_session)


@transaction.atomic
def token_revoke(*, user: User, token_id: int) -> None:
    """Revoke one of the user's own API tokens; sockets it opened close."""
    deleted, _ = ApiToken.objects.filter(pk=token_id, user_id=user.pk).delete()
    if not deleted:
        raise NotFound("no such token")
    access_recheck_user(user_id=user.pk)


@dataclass(frozen=True, slots=True)
class Admission:
    """A WebSocket handshake asking to join a document."""

    user_id: int
    document_id: str
    connection_id: str
    # The API token it authenticated with (None: a browser session, checked by Django's
    # session middleware just before): the token must still exist and its user be active.
    token_id: int | None = None


def admit_connections(*, admissions: Sequence[Admission]) -> list[str | None]:
    """Each handshake's role on its document (None: refused), with a presence row opened for
    every one admitted; a fixed handful of queries however many there are (a join burst)."""
    wanted = {a.document_id: _uuid_or_none(a.document_id) for a in admissions}
    users = {a.user_id for a in admissions}
    active = set(
        get_user_model().objects.filter(pk__in=users, is_active=True).values_list("pk", flat=True)
    )
    token_ids = {a.token_id for a in admissions if a.token_id is not None}
    tokens = dict(
        ApiToken.objects.filter(pk__in=token_ids).values_list("pk", "user_id") if token_ids else []
    )
    roles = {
        (str(doc), user): role
        for doc, user, role in Membership.objects.filter(
            document_id__in={d for d in wanted.values() if d is not None},
            user_id__in=users & active,
        ).values_list("document_id", "user_id", "role")
    }
    results: list[str | None] = []
    now = timezone.now()
    rows = []
    for a in admissions:
        doc = wanted.get(a.document_id)
        token_ok = a.token_id is None or tokens.get(a.token_id) == a.user_id
        role = roles.get((str(doc), a.user_id)) if doc is not None and token_ok else None
        results.append(role)
        if role is not None and doc is not None:
            rows.append(
                PresenceSession(
                    document_id=doc,
                    user_id=a.user_id,
                    connection_id=a.connection_id,
                    last_seen=now,
                )
            )
    PresenceSession.objects.bulk_create(rows)
    return results


def _uuid_or_none(value: str) -> uuid.UUID | None:
    """A document id from a URL, or None if it is not one."""
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def presence_set_clients(*, clients: Mapping[str, Sequence[int]]) -> None:
    """Remember which awareness client ids each connection speaks for, in one transaction."""
    with transaction.atomic():
        for connection_id, client_ids in clients.items():
            PresenceSession.objects.filter(connection_id=connection_id).update(
                yjs_client_ids=sorted(client_ids)
            )


def presence_touch(*, connection_ids: Sequence[str], now: datetime | None = None) -> int:
    """Refresh last_seen for live connections; returns how many rows were touched."""
    if not connection_ids:
        return 0
    return PresenceSession.objects.filter(connection_id__in=connection_ids).update(
        last_seen=now or timezone.now()
    )


def presence_close(*, connection_id: str) -> None:
    """Remove a connection's presence row."""
    PresenceSession.objects.filter(connection_id=connection_id).delete()


@dataclass(frozen=True, slots=True)
class PurgedSession:
    """A presence row removed because its connection stopped sending heartbeats."""

    document_id: uuid.UUID
    user_id: int
    connection_id: str
    yjs_client_ids: list[int]


def presence_purge_stale(
    *, document_id: uuid.UUID, older_than: timedelta, now: datetime | None = None
) -> list[PurgedSession]:
    """Remove a document's presence rows with no heartbeat for `older_than`; tell its people.

    Left behind by a server that crashed or lost its database: a live connection refreshes
    its row every PALIMPSEST_HEARTBEAT_SECONDS.
    """
    cutoff = (now or timezone.now()) - older_than
    with transaction.atomic():
        rows = list(
            PresenceSession.objects.select_for_update().filter(
                document_id=document_id, last_seen__lt=cutoff
            )
        )
        if not rows:
            return []
        PresenceSession.objects.filter(pk__in=[r.pk for r in rows]).delete()
        purged = [
            PurgedSession(
                document_id=r.document_id,
                user_id=r.user_id,
                connection_id=r.connection_id,
                yjs_client_ids=[int(c) for c in r.yjs_client_ids],
            )
            for r in rows
        ]
        clients = sorted({c for p in purged for c in p.yjs_client_ids})
        publish(
            {
                "type": "session.purged",
                "document": str(document_id),
                "users": sorted({p.user_id for p in purged}),
                "clients": clients,
                "sessions": len(purged),
            },
            document_id=document_id,
            room_message={"type": "doc.purged", "clients": clients},
        )
    return purged
