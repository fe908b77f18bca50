"""TipTap / y-prosemirror content to HTML and plain text. Pure: pycrdt and the standard library.

Everything a document holds is untrusted: every text and attribute is escaped, only known
node types become tags, and nothing that makes a renderer fetch a resource is ever emitted.
"""

from __future__ import annotations

import json
import re
from html import escape
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from pycrdt import Doc, XmlElement, XmlFragment, XmlText

# Deeper nesting renders as text only: a hostile document must not exhaust the stack.
MAX_DEPTH = 100
_LINK_SCHEMES = frozenset({"http", "https", "mailto"})
_LANGUAGE = re.compile(r"[A-Za-z0-9_+-]{1,32}")
# Browsers strip C0 controls and spaces around a URL and drop tabs and newlines inside it
# before reading its scheme. Do the same (and drop every other control, which no valid URL
# holds) so the scheme checked here is the scheme a PDF reader or browser would follow.
_URL_EDGES = "".join(map(chr, range(0x21)))
_URL_CONTROLS = re.compile(r"[\x00-\x1f\x7f]+")
# y-prosemirror keys a mark that may overlap itself as "<name>--<8-char hash>".
_HASHED_MARK = re.compile(r"(.*)--[A-Za-z0-9+/=]{8}")
_NUMBER = re.compile(r"[+-]?\d{1,12}(\.\d*)?")
_BLOCKS = {"paragraph": "p", "blockquote": "blockquote", "bulletList": "ul", "listItem": "li"}
# Mark → tag, outermost first, so nesting is the same whatever order the attributes come in.
_MARKS = (("bold", "strong"), ("italic", "em"), ("underline", "u"), ("strike", "s"))

Node = XmlElement | XmlText | XmlFragment

_STYLE = """
@page { size: A4; margin: 22mm 20mm 28mm;
  @bottom-left { content: element(stamp); width: 80%; }
  @bottom-right { content: counter(page) " / " counter(pages); font-size: 9pt; color: #666; } }
.stamp { position: running(stamp); font: 6.5pt "DejaVu Sans Mono", monospace; color: #666; }
.stamp div { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
html { font-family: "DejaVu Serif", "Noto Serif", "Noto Serif CJK SC", "Noto Sans CJK SC",
  serif; font-size: 11pt; line-height: 1.45; color: #111; }
h1, h2, h3, h4, h5, h6 { line-height: 1.2; margin: 1.1em 0 0.4em; page-break-after: avoid; }
h1.doc-title { font-size: 20pt; margin-top: 0; }
p { margin: 0 0 0.6em; orphans: 2; widows: 2; }
blockquote { margin: 0 0 0.6em; padding-left: 0.9em; border-left: 3px solid #bbb; color: #333; }
pre, code { font-family: "DejaVu Sans Mono", "Noto Sans Mono", monospace; font-size: 9.5pt; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; background: #f4f4f4; padding: 0.6em; }
a { color: #1a4f9c; }
hr { border: none; border-top: 1px solid #999; margin: 1em 0; }
"""


class Stamp(NamedTuple):
    """What an export says it is: the document, the edit it shows and the log's chain hash there.

    Printed in every page's footer and kept in the PDF's metadata (as `STAMP_FIELDS` name
    them), so that a file can be checked against the log (tasks/verify.py).
    """

    document_id: str
    seq: int
    chain_hash: str  # hex
    export_id: str


# Stamp field -> the name of its <meta> tag, which WeasyPrint keeps as a PDF Info entry of
# that name (it lowercases meta names, and keeps only letters and digits).
STAMP_FIELDS = {
    "document_id": "palimpsestdocument",
    "seq": "palimpsestseq",
    "chain_hash": "palimpsestchainhash",
    "export_id": "palimpsestexport",
}


def document_html(doc: Doc[Any], *, title: str, stamp: Stamp | None = None) -> str:
    """A complete, self-contained HTML page of the document, ready to print."""
    meta, footer = "", ""
    if stamp is not None:
        meta = (
            "".join(
                f'<meta name="{name}" content="{escape(str(getattr(stamp, field)))}">'
                for field, name in STAMP_FIELDS.items()
            )
            + f'<meta name="description" content="{escape(_stamp_line(stamp))}">'
        )
        footer = (
            f'<div class="stamp"><div>{escape(title)}</div>'
            f"<div>document {escape(stamp.document_id)} · after edit {stamp.seq:,}</div>"
            f"<div>chain sha256 {escape(stamp.chain_hash)}</div></div>"
        )
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8">{meta}'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f'<body>{footer}<h1 class="doc-title">{escape(title)}</h1>\n{fragment_html(doc)}'
        "</body></html>"
    )


def _stamp_line(stamp: Stamp) -> str:
    """The stamp as one sentence (the PDF's subject)."""
    return (
        f"Palimpsest document {stamp.document_id} after edit {stamp.seq}, "
        f"chain hash {stamp.chain_hash} (export {stamp.export_id})"
    )


def fragment_html(doc: Doc[Any]) -> str:
    """The document's content as HTML (no page around it)."""
    root = doc.get("default", type=XmlFragment)
    return "".join(_node_html(child, 0) for child in root.children)


def document_text(doc: Doc[Any]) -> str:
    """The document's plain text: blocks separated by a blank line, list items by a newline."""
    root = doc.get("default", type=XmlFragment)
    blocks: list[str] = []
    for child in root.children:
        _collect_blocks(child, blocks, 0)
    return "\n\n".join(blocks)


def _node_html(node: Node, depth: int) -> str:
    """One node and its children as HTML."""
    if isinstance(node, XmlText):
        return _text_html(node)
    if depth >= MAX_DEPTH:
        return escape(_plain(node, depth))
    inner = "".join(_node_html(child, depth + 1) for child in node.children)
    if not isinstance(node, XmlElement):
        return inner
    tag = node.tag
    if tag in _BLOCKS:
        name = _BLOCKS[tag]
        return f"<{name}>{inner}</{name}>\n"
    if tag == "heading":
        level = _int_attr(node, "level", default=1, low=1, high=6)
        return f"<h{level}>{inner}</h{level}>\n"
    if tag == "orderedList":
        start = _int_attr(node, "start", default=1, low=-(10**9), high=10**9)
        return (f'<ol start="{start}">' if start != 1 else "<ol>") + f"{inner}</ol>\n"
    if tag == "codeBlock":
        language = node.attributes.get("language")
        css = (
            f' class="language-{language}"'
            if isinstance(language, str) and _LANGUAGE.fullmatch(language)
            else ""
        )
        return f"<pre><code{css}>{inner}</code></pre>\n"
    if tag == "horizontalRule":
        return "<hr>\n"
    if tag == "hardBreak":
        return "<br>"
    # Unknown node types (an image, a script, anything a client invents) show only their
    # text: their tag and attributes could make the renderer fetch or run something.
    return inner


def _text_html(node: XmlText) -> str:
    """Formatted text runs as HTML; each mark becomes its tag, links only to safe schemes."""
    out = []
    for insert, attrs in node.diff():
        if not isinstance(insert, str):
            continue  # embeds carry no text
        html = escape(insert)
        marks = _marks(attrs)
        if "code" in marks:
            html = f"<code>{html}</code>"
        for mark, tag in reversed(_MARKS):
            if mark in marks:
                html = f"<{tag}>{html}</{tag}>"
        href = _safe_href(marks.get("link"))
        if href is not None:
            html = f'<a href="{escape(href, quote=True)}">{html}</a>'
        out.append(html)
    return "".join(out)


def _marks(attrs: dict[str, Any] | None) -> dict[str, Any]:
    """A run's marks by name, with y-prosemirror's overlap hashes taken off."""
    # y-prosemirror stores a mark's attrs as its value: {} for bold. Any value but None or
    # False means the mark is on.
    marks: dict[str, Any] = {}
    for key, value in (attrs or {}).items():
        if value is None or value is False:
            continue
        hashed = _HASHED_MARK.fullmatch(key)
        marks[hashed.group(1) if hashed else key] = value
    return marks


def _safe_href(link: Any) -> str | None:
    """The link's href if its scheme is http, https or mailto; else None."""
    if isinstance(link, str) and link.lstrip().startswith("{"):
        try:
            link = json.loads(link)
        except ValueError:
            return None
    href = link.get("href") if isinstance(link, dict) else link
    if not isinstance(href, str) or len(href) > 4000:
        return None
    cleaned = _URL_CONTROLS.sub("", href.strip(_URL_EDGES))
    try:
        scheme = urlsplit(cleaned).scheme.lower()
    except ValueError:
        return None
    return cleaned if scheme in _LINK_SCHEMES else None


def _tag(node: XmlElement | XmlFragment) -> str | None:
    """An element's node type; None for a nested fragment."""
    return node.tag if isinstance(node, XmlElement) else None


def _int_attr(node: XmlElement, name: str, *, default: int, low: int, high: int) -> int:
    """A numeric attribute as an int clamped to [low, high]; anything else gives the default."""
    value = node.attributes.get(name)
    # Only a number reaches the markup: "1 onclick=x" or "1e999" gives the default.
    if isinstance(value, str):
        value = value.strip()
        if not _NUMBER.fullmatch(value):
            return default
    elif not isinstance(value, int | float):
        return default
    try:
        number = int(float(value))
    except (ValueError, OverflowError):
        return default
    return min(max(number, low), high)


def _plain(node: Node, depth: int = 0) -> str:
    """All text under a node, without structure (iterative: any depth is fine)."""
    out: list[str] = []
    stack: list[Node] = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, XmlText):
            out.append("".join(i for i, _ in current.diff() if isinstance(i, str)))
        elif _tag(current) == "hardBreak":
            out.append("\n")
        else:
            stack.extend(reversed(list(current.children)))
    return "".join(out)


def _collect_blocks(node: Node, blocks: list[str], depth: int) -> None:
    """Append the text of each leaf block under `node` to `blocks`, in document order."""
    if isinstance(node, XmlText):
        blocks.append(_plain(node, depth))
        return
    containers = ("bulletList", "orderedList", "listItem", "blockquote")
    tag = _tag(node)
    if tag in containers and depth < MAX_DEPTH:
        items: list[str] = []
        for child in node.children:
            _collect_blocks(child, items, depth + 1)
        if tag in ("bulletList", "orderedList", "listItem"):
            blocks.append("\n".join(items))
        else:
            blocks.extend(items)
        return
    if tag == "horizontalRule":
        return
    blocks.append(_plain(node, depth))
