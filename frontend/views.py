"""Browser pages: thin views over collab selectors and services."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import get_token
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from collab import selectors, services
from collab.http import caller, readable_document
from collab.models import Document
from collab.permissions import Action, NotAllowed, check, role_may
from collab.sync.colors import author_color
from frontend.forms import ShareForm, TitleForm


def _may_share(request: HttpRequest, document: Document) -> bool:
    """Whether the user may share the document; if not, the reason is shown on the next page."""
    try:
        check(user=caller(request), document_id=document.id, action=Action.SHARE)
    except NotAllowed as exc:
        messages.error(request, str(exc))
        return False
    return True


def _form_errors(request: HttpRequest, form: TitleForm | ShareForm) -> None:
    """Show a form's errors on the next page."""
    for field, errors in form.errors.items():
        for error in errors:
            messages.error(request, f"{field}: {error}")


@require_GET
@login_required
def document_list_page(request: HttpRequest) -> HttpResponse:
    """The documents the user may open, and a form to create one."""
    user = caller(request)
    documents = selectors.document_list(user=user).prefetch_related("memberships")
    rows = [
        (d, next((m.role for m in d.memberships.all() if m.user_id == user.pk), ""))
        for d in documents
    ]
    return render(request, "frontend/document_list.html", {"rows": rows, "form": TitleForm()})


@require_POST
@login_required
def document_create_view(request: HttpRequest) -> HttpResponse:
    """Create a document from the list page and open it."""
    form = TitleForm(request.POST)
    if not form.is_valid():
        _form_errors(request, form)
        return redirect("home")
    document = services.document_create(owner=caller(request), title=form.cleaned_data["title"])
    return redirect("editor", doc_id=document.id)


@require_GET
@login_required
def editor_page(request: HttpRequest, doc_id: uuid.UUID) -> HttpResponse:
    """The TipTap editor for one document; the app reads its settings from `config`."""
    document, role = readable_document(request, doc_id)
    user = caller(request)
    config: dict[str, Any] = {
        "document": str(document.id),
        "title": document.title,
        "role": role,
        "user": {
            "id": user.pk,
            "name": user.get_username(),
            "color": author_color(user.get_username()),
        },
        "csrfToken": get_token(request),
        # The browser refuses a paste the server would refuse (frontend/src/limits.js).
        "limits": {"maxMessageBytes": settings.PALIMPSEST_MAX_FRAME_BYTES},
        "paths": {
            "docs": "/ws/docs",
            "notifications": "/ws/notifications",
            "exports": f"/api/docs/{document.id}/exports",
            "exportStatus": "/api/exports/",
        },
    }
    may_share = role_may(role, Action.SHARE)
    members = selectors.document_members(document=document) if may_share else []
    return render(
        request,
        "frontend/editor.html",
        {
            "document": document,
            "role": role,
            "config": config,
            "may_rename": role_may(role, Action.WRITE),
            "may_share": may_share,
            "members": members,
            "rename_form": TitleForm(initial={"title": document.title}),
            "share_form": ShareForm(),
        },
    )


@require_POST
@login_required
def document_rename_view(request: HttpRequest, doc_id: uuid.UUID) -> HttpResponse:
    """The owner or an editor renames the document."""
    document, _ = readable_document(request, doc_id)
    form = TitleForm(request.POST)
    if not form.is_valid():
        _form_errors(request, form)
        return redirect("editor", doc_id=doc_id)
    try:
        services.document_rename(
            document=document, by=caller(request), title=form.cleaned_data["title"]
        )
    except NotAllowed as exc:
        messages.error(request, str(exc))
        return redirect("editor", doc_id=doc_id)
    messages.success(request, "Renamed.")
    return redirect("editor", doc_id=doc_id)


@require_POST
@login_required
def member_add_view(request: HttpRequest, doc_id: uuid.UUID) -> HttpResponse:
    """The owner shares the document with a user as editor or viewer."""
    document, _ = readable_document(request, doc_id)
    if not _may_share(request, document):  # before any username lookup: nothing to learn
        return redirect("editor", doc_id=doc_id)
    form = ShareForm(request.POST)
    if not form.is_valid():
        _form_errors(request, form)
        return redirect("editor", doc_id=doc_id)
    username = form.cleaned_data["username"]
    user = selectors.user_by_username(username=username)
    if user is None:
        messages.error(request, f"There is no user named {username!r}.")
        return redirect("editor", doc_id=doc_id)
    try:
        membership = services.member_add(
            document=document, by=caller(request), user=user, role=form.cleaned_data["role"]
        )
    except (NotAllowed, ValueError) as exc:
        messages.error(request, str(exc))
        return redirect("editor", doc_id=doc_id)
    messages.success(request, f"Shared with {username} as {membership.role}.")
    return redirect("editor", doc_id=doc_id)


@require_POST
@login_required
def member_remove_view(request: HttpRequest, doc_id: uuid.UUID, username: str) -> HttpResponse:
    """The owner unshares the document; the member's open editors close."""
    document, _ = readable_document(request, doc_id)
    if not _may_share(request, document):
        return redirect("editor", doc_id=doc_id)
    user = selectors.user_by_username(username=username)
    try:
        if user is None:
            raise services.NotFound(f"{username} is not a member of this document")
        services.member_remove(document=document, by=caller(request), user=user)
    except (services.NotFound, NotAllowed, ValueError) as exc:
        messages.error(request, str(exc))
        return redirect("editor", doc_id=doc_id)
    messages.success(request, f"{username} no longer has access.")
    return redirect("editor", doc_id=doc_id)


@require_GET
@login_required
def tokens_page(request: HttpRequest) -> HttpResponse:
    """The user's own API tokens, to see and revoke."""
    return render(
        request, "frontend/tokens.html", {"tokens": selectors.token_list(user=caller(request))}
    )


@require_POST
@login_required
def token_revoke_view(request: HttpRequest, token_id: int) -> HttpResponse:
    """Revoke one of the user's own tokens."""
    try:
        services.token_revoke(user=caller(request), token_id=token_id)
    except services.NotFound:
        messages.error(request, "No such token.")
    else:
        messages.success(request, "Token revoked; connections that used it are closed.")
    return redirect("tokens")
