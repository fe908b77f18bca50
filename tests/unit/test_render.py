"""Export rendering: faithful HTML, nothing live from the document, and no fetches at all."""

from __future__ import annotations

import io
import re
import socket
import threading
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from typing import Any

import pytest
from pycrdt import Doc, XmlElement, XmlFragment, XmlText

from tasks.render import pdf as pdf_module
from tasks.render.html import document_html, document_text, fragment_html
from tasks.render.pdf import DenyAllFetcher, RenderError, html_to_pdf
from tests.richdoc import _block, _text, every_node_type


class _Tags(HTMLParser):
    """Every start tag with its attributes, as a browser would parse them."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(html)
    return parser.tags


def _doc(*paragraphs: list[tuple[str, dict[str, Any] | None]]) -> Doc[Any]:
    doc: Doc[Any] = Doc()
    root = doc.get("default", type=XmlFragment)
    for runs in paragraphs:
        _text(_block(root, "paragraph"), runs)
    return doc


def _pdf_text(pdf: bytes) -> str:
    from pypdf import PdfReader

    pages = PdfReader(io.BytesIO(pdf)).pages
    return re.sub(r"\s+", " ", " ".join(p.extract_text() for p in pages))


def test_every_node_type_and_mark_becomes_its_tag() -> None:
    doc, blocks = every_node_type()
    tags = [tag for tag, _ in _tags(fragment_html(doc))]
    for tag in ("h1", "h2", "p", "strong", "em", "s", "code", "a", "ul", "ol", "li"):
        assert tag in tags, tag
    for tag in ("blockquote", "pre", "hr", "br"):
        assert tag in tags, tag
    text = document_text(doc)
    at = 0
    for block in blocks:
        at = text.index(block, at) + len(block)


HOSTILE = '<script>alert(1)</script>"><img src=x onerror=alert(1)>'


def test_text_title_and_attributes_are_escaped() -> None:
    doc: Doc[Any] = Doc()
    root = doc.get("default", type=XmlFragment)
    _text(_block(root, "paragraph"), [(HOSTILE, None)])
    _text(_block(root, "heading", level="1 onclick=x"), [("heading", None)])
    _text(_block(root, "codeBlock", language='x" onload="y'), [(HOSTILE, None)])
    _text(_block(root, "orderedList", start="1; color: red"), [("list", None)])
    html = document_html(doc, title=HOSTILE)
    tags = _tags(html)
    assert [t for t, _ in tags if t in ("script", "img")] == []
    assert all(not name.startswith("on") for _, attrs in tags for name in attrs)
    assert ("h1", {}) in tags  # an invalid level falls back to 1
    assert ("code", {}) in tags  # an invalid language is dropped
    assert HOSTILE.replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;") in html


@pytest.mark.parametrize(
    "href",
    [
        "javascript:alert(1)",
        " JaVaScRiPt:alert(1)",
        "java\tscript:alert(1)",
        "file:///etc/passwd",
        "data:text/html,<script>alert(1)</script>",
        "/relative/path",
        "//evil.example/x",
    ],
)
def test_links_to_other_schemes_render_as_text(href: str) -> None:
    html = fragment_html(_doc([("click", {"link": {"href": href}})]))
    assert "<a" not in html and "click" in html


def test_safe_links_keep_an_escaped_href() -> None:
    html = fragment_html(_doc([("site", {"link": {"href": 'https://example.com/?a=1&b="2"'}})]))
    assert _tags(html)[1] == ("a", {"href": 'https://example.com/?a=1&b="2"'})
    assert 'href="https://example.com/?a=1&amp;b=&quot;2&quot;"' in html


def test_unknown_elements_show_only_their_text() -> None:
    doc: Doc[Any] = Doc()
    root = doc.get("default", type=XmlFragment)
    image = _block(root, "image", src="http://169.254.169.254/latest/meta-data/")
    image.children.append(XmlText("caption"))
    _block(root, "script").children.append(XmlText("alert(1)"))
    html = fragment_html(doc)
    assert _tags(html) == []
    assert "caption" in html and "169.254" not in html


def test_deep_nesting_renders_without_exhausting_the_stack() -> None:
    doc: Doc[Any] = Doc()
    node: XmlFragment | XmlElement = doc.get("default", type=XmlFragment)
    with doc.transaction():
        for _ in range(1500):
            node = _block(node, "blockquote")
        node.children.append(XmlText("bottom"))
    html = document_html(doc, title="deep")
    assert "bottom" in html
    assert "bottom" in document_text(doc)


@pytest.fixture
def listener() -> Iterator[tuple[int, list[bytes]]]:
    """A local TCP listener recording every connection made to it."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.1)
    seen: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    seen.append(conn.recv(4096) or b"(connected)")
                except OSError:
                    seen.append(b"(connected)")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], seen
    stop.set()
    thread.join()
    server.close()


def _urls(port: int) -> list[str]:
    return [
        "file:///etc/passwd",
        f"http://127.0.0.1:{port}/secret",
        "http://169.254.169.254/latest/meta-data/",
    ]


def test_a_document_pointing_at_local_files_and_hosts_fetches_nothing(
    listener: tuple[int, list[bytes]],
) -> None:
    port, seen = listener
    doc: Doc[Any] = Doc()
    root = doc.get("default", type=XmlFragment)
    for url in _urls(port):
        _text(_block(root, "paragraph"), [("link to " + url, {"link": {"href": url}})])
        image = _block(root, "image", src=url)
        image.children.append(XmlText("an image"))
    pdf = html_to_pdf(document_html(doc, title="links"))
    time.sleep(0.3)
    assert pdf.startswith(b"%PDF")
    assert seen == []
    assert "root:x:0:0" not in _pdf_text(pdf)


def test_hostile_html_fetches_nothing_either(listener: tuple[int, list[bytes]]) -> None:
    port, seen = listener
    base = f"http://127.0.0.1:{port}"
    html = f"""<!DOCTYPE html><html><head>
    <link rel="stylesheet" href="{base}/css">
    <style>@import url("{base}/import");
      body {{ background: url("{base}/background"); }}
      @font-face {{ font-family: x; src: url("{base}/font"); }}
      p {{ font-family: x; }}</style></head><body>
    <p>visible text</p>
    <img src="{base}/img"><img src="file:///etc/passwd">
    <object data="{base}/object"></object><iframe src="{base}/iframe"></iframe>
    <embed src="file:///etc/passwd"><a href="file:///etc/passwd">a local file</a>
    <img src="http://169.254.169.254/latest/meta-data/">
    </body></html>"""
    pdf = html_to_pdf(html)
    time.sleep(0.3)
    assert seen == [], seen
    text = _pdf_text(pdf)
    assert "visible text" in text and "root:x:0:0" not in text


def test_the_fetcher_refuses_every_url_without_connecting(
    listener: tuple[int, list[bytes]],
) -> None:
    port, seen = listener
    fetcher = DenyAllFetcher()
    for url in [*_urls(port), "data:text/plain,hello", f"https://127.0.0.1:{port}/", "ftp://x/"]:
        with pytest.raises(ValueError):
            fetcher(url)
    time.sleep(0.2)
    assert seen == []


def test_the_pdf_holds_every_block_in_order() -> None:
    doc, blocks = every_node_type()
    text = _pdf_text(html_to_pdf(document_html(doc, title="Report")))
    at = 0
    for block in blocks:
        found = text.find(block, at)
        assert found >= 0, f"{block!r} not after {at} in {text!r}"
        at = found + len(block)


def test_text_in_many_scripts_reaches_the_pdf(wide_fonts_available: None) -> None:
    # Without a font covering a script, its glyphs are missing and the text comes back garbled.
    lines = ["你好世界", "こんにちは", "안녕하세요", "مرحبا", "नमस्ते", "Ωμέγα", "Привет", "café"]
    doc = _doc(*[[(line, None)] for line in lines])
    text = _pdf_text(html_to_pdf(document_html(doc, title="scripts")))
    for line in lines:
        assert line in text, (line, text)


def test_a_renderer_failure_is_a_render_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: Any, *args: Any, **kwargs: Any) -> bytes:
        raise AssertionError("layout exploded")

    monkeypatch.setattr(pdf_module.HTML, "write_pdf", broken)
    with pytest.raises(RenderError, match="layout exploded"):
        html_to_pdf("<p>x</p>")


def test_the_child_process_renders_and_reports_failures() -> None:
    import multiprocessing

    from tasks.render.isolated import html_to_pdf_isolated, shutdown

    try:
        doc, blocks = every_node_type()
        pdf = html_to_pdf_isolated(document_html(doc, title="Report"))
        assert blocks[0] in _pdf_text(pdf)
        assert multiprocessing.active_children(), "the render did not run in a child process"
        with pytest.raises(RenderError):
            html_to_pdf_isolated(None)  # type: ignore[arg-type]
    finally:
        shutdown()
