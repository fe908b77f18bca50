"""A collaborator's colour: the same for a name on every screen (carets, who-is-here, the
admin's history), chosen here only; the server stamps it on every awareness state."""

from __future__ import annotations

import struct

# Dark enough for white caret labels: each has at least 4.5:1 contrast with white.
PALETTE = (
    "#b42318", "#1d4ed8", "#047857", "#7c3aed", "#b45309",
    "#be185d", "#0e7490", "#4d7c0f", "#475569", "#a21caf",
)  # fmt: skip
NOBODY = "#6b7280"


def author_color(name: str | None) -> str:
    """The palette entry FNV-1a of the name's UTF-16 code units picks (grey for nobody)."""
    if not name:
        return NOBODY
    value = 0x811C9DC5
    for (unit,) in struct.iter_unpack("<H", name.encode("utf-16-le")):
        value ^= unit
        value = (value * 0x01000193) & 0xFFFFFFFF
    return PALETTE[value % len(PALETTE)]
