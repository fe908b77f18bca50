"""Browser pages: thin views over collab selectors."""

from __future__ import annotations

import uuid

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from collab import selectors


@login_required
def document_list_page(request: HttpRequest) -> HttpResponse:
    """The documents the user may open."""
    documents = selectors.document_list(user=request.user)  # type: ignore[arg-type]
    return render(request, "frontend/document_list.html", {"documents": documents})


@login_required
def editor_page(request: HttpRequest, doc_id: uuid.UUID) -> HttpResponse:
    """The editor for one document (the full TipTap app comes with the browser-app issue)."""
    document = selectors.document_get(user=request.user, document_id=doc_id)  # type: ignore[arg-type]
    if document is None:
        raise Http404("no such document")
    role = selectors.document_role(user=request.user, document_id=doc_id)  # type: ignore[arg-type]
    return render(request, "frontend/editor.html", {"document": document, "role": role})
