"""Forms of the browser pages: what a user may type, checked before any service runs."""

from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError

from collab.limits import TITLE_MAX, USERNAME_MAX
from collab.models import Role
from collab.text import printable_text


def _printable(value: str) -> None:
    """A form validator: no control characters or lone surrogates."""
    try:
        printable_text(value, what="this field")
    except ValueError as exc:
        raise ValidationError(str(exc)) from exc


class TitleForm(forms.Form):
    """A document's title, for create and rename."""

    title = forms.CharField(max_length=TITLE_MAX, strip=True, validators=[_printable])


class ShareForm(forms.Form):
    """Share a document with a user as editor or viewer."""

    username = forms.CharField(max_length=USERNAME_MAX, strip=True, validators=[_printable])
    role = forms.ChoiceField(choices=[(Role.EDITOR, "Editor"), (Role.VIEWER, "Viewer")])
