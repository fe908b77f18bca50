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
from pypdf import PdfReader

from collab.sync.html import document_html, document_text, fragment_html
from tasks.render import pdf as pdf_module
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


def test_marks_as_y_prosemirror_stores_them() -> None:
    # y-prosemirror writes attrs[mark name] = mark.attrs: {} for bold, a dict for a link, and
    # "<name>--<hash>" for a mark that may overlap itself.
    doc: Doc[Any] = Doc()
    root = doc.get("default", type=XmlFragment)
    text = _block(root, "paragraph").children.append(XmlText())
    text.insert(0, "bold ", {"bold": {}})
    text.insert(5, "italic ", {"italic--AbC+/12=": {}})
    text.insert(12, "under ", {"underline": {}})
    text.insert(18, "struck ", {"strike": {}})
    text.insert(25, "code ", {"code": {}})
    text.insert(30, "link", {"link": {"href": "https://e.com/", "target": "_blank", "rel": None}})
    text.insert(34, " json", {"link": '{"href": "mailto:a@e.com"}'})
    text.insert(39, " off", {"bold": None, "italic": False})
    text.insert_embed(43, {"image": "http://169.254.169.254/"})
    text.insert(44, " end")
    text.format(0, 4, {"strike": {}})
    html = fragment_html(doc)
    assert html.startswith("<p><strong><s>bold</s></strong><strong> </strong><em>italic </em>")
    assert "<u>under </u><s>struck </s><code>code </code>" in html
    assert '<a href="https://e.com/">link</a><a href="mailto:a@e.com"> json</a> off end' in html
    assert "_blank" not in html and "169.254" not in html
    assert document_text(doc) == "bold italic under struck code link json off end"


def test_headings_clamp_and_ordered_lists_keep_their_start() -> None:
    doc: Doc[Any] = Doc()
    root = doc.get("default", type=XmlFragment)
    for level in (3, "4", 2.0, 0, 9, "7", None, "x", "1e999", float("nan"), True):
        _text(_block(root, "heading", level=level), [("h", None)])
    _text(_block(_block(_block(root, "orderedList", start="5"), "listItem"), "paragraph"), [])
    _text(_block(_block(_block(root, "orderedList", start=-3.0), "listItem"), "paragraph"), [])
    tags = _tags(fragment_html(doc))
    assert [t for t, _ in tags if t[0] == "h"] == [
        *("h3", "h4", "h2", "h1", "h6", "h6", "h1", "h1", "h1", "h1", "h1"),
    ]
    assert [a for t, a in tags if t == "ol"] == [{"start": "5"}, {"start": "-3"}]


def test_nested_lists_and_quotes_keep_their_structure() -> None:
    doc: Doc[Any] = Doc()
    root = doc.get("default", type=XmlFragment)
    quote = _block(root, "blockquote")
    outer = _block(quote, "bulletList")
    first = _block(outer, "listItem")
    _text(_block(first, "paragraph"), [("outer one", None)])
    inner = _block(first, "orderedList")
    for item in ("inner a", "inner b"):
        _text(_block(_block(inner, "listItem"), "paragraph"), [(item, None)])
    _text(_block(_block(outer, "listItem"), "paragraph"), [("outer two", None)])
    _text(_block(root, "paragraph"), [("after", None)])
    html = fragment_html(doc)
    assert re.sub(r"\s+", "", html) == (
        "<blockquote><ul><li><p>outerone</p><ol><li><p>innera</p></li><li><p>innerb</p></li>"
        "</ol></li><li><p>outertwo</p></li></ul></blockquote><p>after</p>"
    )
    assert document_text(doc) == "outer one\ninner a\ninner b\nouter two\n\nafter"


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


def test_a_hostile_safe_scheme_href_stays_inside_its_attribute() -> None:
    href = 'https://e.com/"><img src=x onerror=alert(1)>'
    html = fragment_html(_doc([("x", {"link": {"href": href}})]))
    assert _tags(html) == [("p", {}), ("a", {"href": href})]
    html = fragment_html(_doc([("x", {"link": {"href": " \x00https://e.com/a\tb c\n"}})]))
    assert _tags(html)[1] == ("a", {"href": "https://e.com/ab c"})


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


def test_deeply_nested_lists_render_as_text_beyond_the_limit() -> None:
    doc: Doc[Any] = Doc()
    node: XmlFragment | XmlElement = doc.get("default", type=XmlFragment)
    with doc.transaction():
        for depth in range(500):
            item = _block(_block(node, "bulletList"), "listItem")
            _text(_block(item, "paragraph"), [(f"level {depth}", {"bold": {}})])
            node = item
    html = fragment_html(doc)
    assert "level 0" in html and "level 499" in html
    assert 0 < html.count("<ul>") < 100
    text = document_text(doc)
    assert text.index("level 0") < text.index("level 250") < text.index("level 499")


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
    listener: tuple[int, list[bytes]], caplog: pytest.LogCaptureFixture
) -> None:
    port, seen = listener
    doc: Doc[Any] = Doc()
    root = doc.get("default", type=XmlFragment)
    for url in _urls(port):
        _text(_block(root, "paragraph"), [("link to " + url, {"link": {"href": url}})])
        image = _block(root, "image", src=url)
        image.children.append(XmlText("an image"))
    html = document_html(doc, title="links")
    # The http links stay links (following one is the reader's choice); nothing else is live.
    assert [(t, attrs) for t, attrs in _tags(html) if attrs and t != "meta"] == [
        ("h1", {"class": "doc-title"}),
        *[("a", {"href": url}) for url in _urls(port) if url.startswith("http")],
    ]
    with caplog.at_level("WARNING", logger="tasks.render"):
        pdf = html_to_pdf(html)
    time.sleep(0.3)
    assert pdf.startswith(b"%PDF")
    assert seen == []
    assert "root:x:0:0" not in _pdf_text(pdf)
    # Our HTML links nothing, so the renderer never even asks (WeasyPrint's own warnings,
    # e.g. about a missing HarfBuzz subsetter, are not refusals).
    assert [r.getMessage() for r in caplog.records if r.name == "tasks.render"] == []


def test_hostile_html_fetches_nothing_either(
    listener: tuple[int, list[bytes]], caplog: pytest.LogCaptureFixture
) -> None:
    port, seen = listener
    base = f"http://127.0.0.1:{port}"
    html = f"""<!DOCTYPE html><html><head><base href="{base}/base/">
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
    <link rel="attachment" href="file:///etc/passwd">
    <a rel="attachment" href="file:///etc/passwd">attached</a>
    <a rel="attachment" href="{base}/attachment">attached too</a>
    <ul style="list-style-image: url('{base}/bullet')"><li>item</li></ul>
    <div style="content: url('{base}/content')"></div>
    <svg xmlns="http://www.w3.org/2000/svg" width="9" height="9">
      <image href="{base}/svg-image" width="9" height="9"/></svg>
    <img src="data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'/%3E">
    </body></html>"""
    with caplog.at_level("WARNING", logger="tasks.render"):
        pdf = html_to_pdf(html)
    time.sleep(0.3)
    assert seen == [], seen
    assert pdf.startswith(b"%PDF")
    text = _pdf_text(pdf)
    assert "visible text" in text and "root:x:0:0" not in text
    assert PdfReader(io.BytesIO(pdf)).attachments == {}
    refused = " ".join(r.getMessage() for r in caplog.records)
    for path in ("/css", "/import", "/font", "/img", "/bullet", "/svg-image", "/attachment"):
        assert f"{base}{path}" in refused, path
    assert "file:///etc/passwd" in refused and "data:image/svg+xml" in refused


def test_the_fetcher_refuses_every_url_without_connecting(
    listener: tuple[int, list[bytes]], caplog: pytest.LogCaptureFixture
) -> None:
    port, seen = listener
    fetcher = DenyAllFetcher()
    urls = [*_urls(port), "data:text/plain,hello", f"https://127.0.0.1:{port}/", "ftp://x/"]
    for url in [*urls, f"http://127.0.0.1:{port}/" + "x" * 1000]:
        with pytest.raises(ValueError):
            fetcher(url)
        with pytest.raises(ValueError):
            fetcher.fetch(url)
        with pytest.raises(ValueError):
            fetcher.open(url)
    time.sleep(0.2)
    assert seen == []
    # One warning per refusal, the URL cut to 200 characters.
    assert len(caplog.records) == 3 * (len(urls) + 1)
    assert all(len(r.getMessage()) < 260 for r in caplog.records)


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
    with pytest.raises(RenderError, match="layout exploded") as caught:
        html_to_pdf("<p>x</p>")
    assert isinstance(caught.value.__cause__, AssertionError)

    def verbose(self: Any, *args: Any, **kwargs: Any) -> bytes:
        raise ValueError("the document says " + "secret " * 500)

    monkeypatch.setattr(pdf_module.HTML, "write_pdf", verbose)
    with pytest.raises(RenderError) as caught:
        html_to_pdf("<p>x</p>")
    assert len(str(caught.value)) < 300


def test_the_child_process_renders_and_reports_failures() -> None:
    import multiprocessing

    from tasks.render.isolated import html_to_pdf_isolated, shutdown

    try:
        doc, blocks = every_node_type()
        pdf = html_to_pdf_isolated(document_html(doc, title="Report"), limit_s=60)
        assert blocks[0] in _pdf_text(pdf)
        assert multiprocessing.active_children(), "the render did not run in a child process"
        with pytest.raises(RenderError):
            html_to_pdf_isolated(None, limit_s=60)  # type: ignore[arg-type]
    finally:
        shutdown()
