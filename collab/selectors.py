"""Reads about documents, members and tokens."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.utils import timezone

from collab.models import ApiToken, Document, Membership, PresenceSession
from collab.services import token_digest

# "Last used" is kept to the minute: writing it on every connect would take SQLite's one
# write lock away from the event log each time someone joins a document.
_LAST_USED_STEP = timedelta(minutes=1)


def user_for_token(*, token: str) -> User | None:
    """The active user a token belongs to, or None."""
    if not token or len(token) > 200:
        return None
    found = (
        ApiToken.objects.select_related("user")
        .filter(digest=token_digest(token), user__is_active=True)
        .first()
    )
    if found is None:
        return None
    now = timezone.now()
    if found.last_used_at is None or now - found.last_used_at >= _LAST_USED_STEP:
        ApiToken.objects.filter(pk=found.pk).update(last_used_at=now)
    return found.user


def document_role(*, user: User, document_id: uuid.UUID | str) -> str | None:
    """The user's role on a document, or None for strangers and unknown documents."""
    if not user.is_authenticated:
        return None
    try:
        doc_uuid = uuid.UUID(str(document_id))
    except ValueError:
        return None
    return (
        Membership.objects.filter(document_id=doc_uuid, user_id=user.pk)
        .values_list("role", flat=True)
        .first()
    )


def document_list(*, user: User) -> QuerySet[Document]:
    """Documents the user may read, newest first."""
    return Document.objects.filter(memberships__user_id=user.pk).select_related("owner")


def document_get(*, user: User, document_id: uuid.UUID | str) -> Document | None:
    """One document the user may read, or None."""
    try:
        doc_uuid = uuid.UUID(str(document_id))
    except ValueError:
        return None
    return document_list(user=user).filter(pk=doc_uuid).first()


def user_by_username(*, username: str) -> User | None:
    """An active user by username, or None."""
    return get_user_model().objects.filter(username=username, is_active=True).first()


def document_members(*, document: Document) -> QuerySet[Membership]:
    """A document's memberships."""
    return Membership.objects.filter(document=document).select_related("user").order_by("pk")


def documents_with_stale_presence(*, older_than: timedelta) -> list[uuid.UUID]:
    """Documents that have presence rows with no heartbeat for `older_than`."""
    cutoff = timezone.now() - older_than
    return list(
        PresenceSession.objects.filter(last_seen__lt=cutoff)
        .values_list("document_id", flat=True)
        .distinct()
    )
