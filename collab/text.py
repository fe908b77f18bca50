"""Stored text is printable: no Unicode control characters (category Cc, NUL included) and no
lone surrogates, in titles, usernames, labels or any other text field. PostgreSQL refuses NUL
outright (a 500 before this check), and the others only ever hide or garble what people see."""

from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import AfterValidator

# Cc: C0 and C1 controls (NUL, ESC, ...); Cs: surrogates, which in a Python str are always lone.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cs"})


def printable_text(value: str, *, what: str = "text") -> str:
    """`value` itself, or ValueError naming `what` when it holds a control or surrogate."""
    for char in value:
        if unicodedata.category(char) in _REFUSED_CATEGORIES:
            raise ValueError(
                f"{what} may not contain control characters (U+{ord(char):04X}) or lone surrogates"
            )
    return value


def is_printable_text(value: str) -> bool:
    """Whether `value` would pass `printable_text`."""
    return not any(unicodedata.category(c) in _REFUSED_CATEGORIES for c in value)


# A string field of an API body that must be printable text (a 400 otherwise).
PrintableStr = Annotated[str, AfterValidator(printable_text)]
