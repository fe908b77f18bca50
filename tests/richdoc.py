"""TipTap-shaped documents for tests and benchmarks, built the way y-prosemirror stores them."""

from __future__ import annotations

from typing import Any

from pycrdt import Doc, XmlElement, XmlFragment, XmlText


def _text(parent: XmlElement, runs: list[tuple[str, dict[str, Any] | None]]) -> None:
    """Append an XmlText holding formatted runs."""
    text = parent.children.append(XmlText())
    index = 0
    for chunk, marks in runs:
        text.insert(index, chunk, marks)
        index += len(chunk)


def _block(fragment: XmlFragment | XmlElement, name: str, **attrs: Any) -> XmlElement:
    """Append an element, setting attributes once it is in the document."""
    element = fragment.children.append(XmlElement(name))
    for key, value in attrs.items():
        element.attributes[key] = value
    return element


def every_node_type(doc: Doc[Any] | None = None) -> tuple[Doc[Any], list[str]]:
    """A document with every node type and mark; the text of its blocks, in order."""
    doc = doc or Doc()
    root = doc.get("default", type=XmlFragment)
    with doc.transaction():
        _text(_block(root, "heading", level=1), [("Quarterly report", None)])
        _text(
            _block(root, "paragraph"),
            [
                ("Plain, ", None),
                ("bold, ", {"bold": True}),
                ("italic, ", {"italic": True}),
                ("struck, ", {"strike": True}),
                ("code, ", {"code": True}),
                ("a link", {"link": {"href": "https://example.com/?a=1&b=2"}}),
                (" and <angle> & ampersand.", None),
            ],
        )
        _text(_block(root, "heading", level=2), [("Bullet points", None)])
        bullets = _block(root, "bulletList")
        for item in ("first bullet", "second bullet"):
            _text(_block(_block(bullets, "listItem"), "paragraph"), [(item, None)])
        ordered = _block(root, "orderedList", start=1)
        for item in ("step one", "step two"):
            _text(_block(_block(ordered, "listItem"), "paragraph"), [(item, None)])
        quote = _block(root, "blockquote")
        _text(_block(quote, "paragraph"), [("A quoted remark.", None)])
        code = _block(root, "codeBlock", language="python")
        _text(code, [("print('hello, world')", None)])
        _block(root, "horizontalRule")
        line = _block(root, "paragraph")
        _text(line, [("Before the break", None)])
        line.children.append(XmlElement("hardBreak"))
        _text(line, [("after the break. Ωμέγα, Привет, café.", None)])
    blocks = [
        "Quarterly report",
        "Plain, bold, italic, struck, code, a link and <angle> & ampersand.",
        "Bullet points",
        "first bullet",
        "second bullet",
        "step one",
        "step two",
        "A quoted remark.",
        "print('hello, world')",
        "Before the break",
        "after the break. Ωμέγα, Привет, café.",
    ]
    return doc, blocks


def long_document(pages: int, doc: Doc[Any] | None = None) -> Doc[Any]:
    """About `pages` A4 pages of headings and paragraphs."""
    doc = doc or Doc()
    root = doc.get("default", type=XmlFragment)
    sentence = "The quick brown fox jumps over the lazy dog while the log keeps every edit. "
    with doc.transaction():
        for page in range(pages):
            _text(_block(root, "heading", level=2), [(f"Section {page + 1}", None)])
            for _ in range(7):
                _text(_block(root, "paragraph"), [(sentence * 5, None)])
    return doc
