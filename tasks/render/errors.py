"""Why a render did not produce a PDF (light to import: no WeasyPrint here)."""

from __future__ import annotations


class RenderError(Exception):
    """The renderer failed on this input; retrying cannot help."""


class RenderTimedOut(RenderError):
    """The render overran its time limit; its child process was killed."""


class RendererStopped(Exception):
    """The server is stopping; the render was cut short and runs again after a restart."""
