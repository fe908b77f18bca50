"""HTML to PDF through WeasyPrint, which may fetch nothing: no file, no network, no data URL."""

from __future__ import annotations

import logging
from typing import Any

from weasyprint import HTML
from weasyprint.urls import URLFetcher

from collab.limits import QUOTED_CHARS
from tasks.render.errors import RenderError

logger = logging.getLogger("tasks.render")


class RefusedFetch(ValueError):
    """A document asked the renderer for a resource; every such request is refused."""


class DenyAllFetcher(URLFetcher):
    """WeasyPrint's fetcher with every URL refused before anything is opened.

    WeasyPrint by default reads `file:` URLs and fetches `http(s):` ones, so a document could
    read the server's files or reach its network (DESIGN, pitfalls). Exports are built from
    the document alone; our HTML links nothing, and whatever else asks is refused here.
    WeasyPrint skips a refused resource with a warning and renders the rest.
    """

    def __init__(self) -> None:
        super().__init__(allowed_protocols=(), allow_redirects=False)

    def fetch(self, url: str, headers: Any = None) -> Any:
        """Refuse."""
        logger.warning("export renderer refused to fetch %s", url[:QUOTED_CHARS])
        raise RefusedFetch(f"fetching is disabled in exports: {url[:QUOTED_CHARS]}")

    def open(self, url: Any, data: Any = None, timeout: Any = None) -> Any:
        """Refuse (the opener path)."""
        return self.fetch(getattr(url, "full_url", str(url)))


def html_to_pdf(html: str) -> bytes:
    """Render an HTML page to PDF bytes, fetching nothing."""
    try:
        pdf = HTML(string=html, base_url=None, url_fetcher=DenyAllFetcher()).write_pdf(
            # The stamp's <meta> tags (collab.sync.html.Stamp) become PDF Info entries.
            custom_metadata=True
        )
    except Exception as exc:
        # A short reason only: the exception text may quote the document, and it gets logged.
        raise RenderError(
            f"the PDF renderer failed: {type(exc).__name__}: {str(exc)[:QUOTED_CHARS]}"
        ) from exc
    if not pdf:
        raise RenderError("the PDF renderer produced nothing")
    return bytes(pdf)
