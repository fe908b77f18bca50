"""Reads about documents, members and tokens."""

from __future__ import annotations

import uuid
from datetime import timedelta
from importlib import import_module

from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from collab.models import ApiToken, Document, Membership, PresenceSession

# The role itself is collab.permissions' to answer; callers have long found it here.
from collab.permissions import document_role as document_role
from collab.services import token_digest
from collab.text import is_printable_text

# "Last used" is kept to the minute: writing it on every connect would take SQLite's one
# write lock away from the event log each time someone joins a document.
_LAST_USED_STEP = timedelta(minutes=1)


def user_for_token(*, token: str) -> User | None:
    """The active user a token belongs to, or None."""
    found = token_lookup(token=token)
    return None if found is None else found.user


def token_lookup(*, token: str) -> ApiToken | None:
    """The token row (with its active user) a bearer token names, or None."""
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
    return found


def token_list(*, user: User) -> QuerySet[ApiToken]:
    """A user's own API tokens, newest first (their digests never leave the database)."""
    return ApiToken.objects.filter(user_id=user.pk).order_by("-created_at", "-pk")


def connection_role(
    *,
    user_id: int,
    document_id: uuid.UUID,
    token_id: int | None = None,
    session_key: str | None = None,
) -> str | None:
    """The role a live socket still has: None once its user is deactivated, its token revoked,
    its browser session logged out or its password changed, or its membership gone."""
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if user is None:
        return None
    if token_id is not None and not ApiToken.objects.filter(pk=token_id, user_id=user_id).exists():
        return None
    if session_key is not None and not _session_is_users(session_key, user):
        return None
    return document_role(user=user, document_id=document_id)


def _session_is_users(session_key: str, user: User) -> bool:
    """Whether a session is still logged in as `user` with the password it logged in with
    (Django stores a hash of the password's hash in the session; a new password changes it)."""
    data = import_module(settings.SESSION_ENGINE).SessionStore(session_key).load()
    if str(data.get(SESSION_KEY)) != str(user.pk):
        return False
    stored = data.get(HASH_SESSION_KEY)
    return isinstance(stored, str) and constant_time_compare(stored, user.get_session_auth_hash())


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
    """An active user by username, or None (also for a name no user can have)."""
    if not is_printable_text(username):
        return None  # PostgreSQL would refuse a NUL in the query itself
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
