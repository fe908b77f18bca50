"""Forms of the browser pages: what a user may type, checked before any service runs."""

from __future__ import annotations

from django import forms

from collab.models import Role
from collab.services import TITLE_MAX


class TitleForm(forms.Form):
    """A document's title, for create and rename."""

    title = forms.CharField(max_length=TITLE_MAX, strip=True)


class ShareForm(forms.Form):
    """Share a document with a user as editor or viewer."""

    username = forms.CharField(max_length=150, strip=True)
    role = forms.ChoiceField(choices=[(Role.EDITOR, "Editor"), (Role.VIEWER, "Viewer")])
