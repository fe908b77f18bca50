"""May this user do this to this document? The one module that answers, for every entry point:
the HTTP API, WebSockets, pages, the admin and tasks all ask here, and all refuse with
`NotAllowed` (or `NotFound` where even the document's existence is not theirs to know)."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any

from django.http import Http404

from collab.models import Membership, Role


class Action(StrEnum):
    """What can be done to a document."""

    READ = "read"  # open it, its history, attribution, content at any seq
    WRITE = "write"  # edit it, rename it
    SHARE = "share"  # add, change or remove members
    RESTORE = "restore"  # restore an old version, name versions
    EXPORT = "export"  # render it as a PDF


class NotAllowed(PermissionError):
    """The caller may know the document, but may not do this to it."""


class NotFound(Http404):
    """No such object, or the caller may not know it exists (a page answers 404 for it)."""


_GRANTS: dict[str, frozenset[Action]] = {
    Role.OWNER: frozenset(Action),
    Role.EDITOR: frozenset({Action.READ, Action.WRITE, Action.RESTORE, Action.EXPORT}),
    Role.VIEWER: frozenset({Action.READ, Action.EXPORT}),
}
# Staff in the admin act as operators, by Django's model permissions on documents; sharing is
# the owner's alone.
_OPERATOR_PERMISSIONS: dict[Action, tuple[str, ...]] = {
    Action.READ: ("collab.view_document", "collab.change_document"),
    Action.EXPORT: ("collab.view_document", "collab.change_document"),
    Action.WRITE: ("collab.change_document",),
    Action.RESTORE: ("collab.change_document",),
}
_REFUSALS: dict[Action, str] = {
    Action.READ: "you may not read this document",
    Action.WRITE: "only the owner and editors may change this document",
    Action.SHARE: "only the owner may share or unshare this document",
    Action.RESTORE: "only the owner and editors may restore this document or name its versions",
    Action.EXPORT: "you may not export this document",
}


def document_role(*, user: Any, document_id: uuid.UUID | str) -> str | None:
    """The user's role on a document, or None for strangers, unknown documents and anyone
    not signed in or deactivated."""
    if user is None or not user.is_authenticated or not user.is_active:
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


def role_may(role: str | None, action: Action) -> bool:
    """Whether a member with `role` (None: not a member) may do `action`."""
    return role is not None and action in _GRANTS.get(role, frozenset())


def operator_may(user: Any, action: Action) -> bool:
    """Whether active staff may do `action` to any document from the admin."""
    if user is None or not (user.is_active and user.is_staff):
        return False
    return any(user.has_perm(p) for p in _OPERATOR_PERMISSIONS.get(action, ()))


def check(
    *, user: Any, document_id: uuid.UUID | str, action: Action, operator: bool = False
) -> str | None:
    """The user's role if they may do `action` (None: an operator who is not a member).

    Raises NotFound when they may not even read the document, so strangers learn nothing of
    it, and NotAllowed when they may read it but not do this. `operator`: asked from the
    admin, where staff act by their model permissions.
    """
    role = document_role(user=user, document_id=document_id)
    if role_may(role, action) or (operator and operator_may(user, action)):
        return role
    if role is None and not (operator and operator_may(user, Action.READ)):
        raise NotFound("no such document")
    raise NotAllowed(_REFUSALS[action])
