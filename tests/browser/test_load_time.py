"""Time to editable: navigation start until a ~50k-character document can be edited."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import BrowserContext, expect

from tests.browser.conftest import Live, login, record_figures

PARAGRAPHS = 500
LAST = "The last paragraph, number 500, ends here."

# Built on the server with pycrdt in y-prosemirror's shape (XmlFragment "default" of
# paragraph elements, each holding one XmlText) and appended as ONE event through the log's
# own append service, as a client's first update would be.
SEED = """
import uuid
from django.contrib.auth.models import User
from pycrdt import Doc, XmlElement, XmlFragment, XmlText
from events.services import NewEvent, event_append_batch

filler = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempus. "
doc = Doc()
root = doc.get("default", type=XmlFragment)
chars = 0
with doc.transaction():
    for i in range({count} - 1):
        paragraph = root.children.append(XmlElement("paragraph"))
        text = paragraph.children.append(XmlText())
        line = f"Paragraph {{i + 1:03d}}. {{filler}}Done. "
        text.insert(0, line)
        chars += len(line)
    paragraph = root.children.append(XmlElement("paragraph"))
    paragraph.children.append(XmlText()).insert(0, {last!r})
    chars += len({last!r})
owner = User.objects.get(username="alice")
event_append_batch(items=[NewEvent(
    document_id=uuid.UUID({doc_id!r}), update=doc.get_update(), actor_id=owner.pk,
    yjs_client_id=doc.client_id,
)])
print(chars)
"""

# Before any of the page's scripts: note when the app says it is ready and when the editor
# is editable with the last paragraph rendered (ms since navigation start).
TIMING_INIT_JS = """
(() => {
  const last = %s
  const check = () => {
    const app = document.getElementById('editor-app')
    if (!app || app.dataset.ready !== 'true') return
    if (window.__readyMs === undefined) window.__readyMs = performance.now()
    const editor = app.querySelector('.ProseMirror')
    if (window.__editableMs !== undefined || !editor) return
    if (editor.getAttribute('contenteditable') !== 'true') return
    const block = editor.lastElementChild
    if (block && block.textContent.includes(last)) window.__editableMs = performance.now()
  }
  new MutationObserver(check).observe(document, {
    subtree: true, childList: true, attributes: true, characterData: true,
  })
})()
"""


def test_time_to_editable_on_a_50k_character_document(
    live: Live, new_context: Callable[..., BrowserContext]
) -> None:
    doc = live.document(live.tokens["alice"])
    chars = int(live.shell(SEED.format(count=PARAGRAPHS, last=LAST, doc_id=doc)))
    assert 48_000 <= chars <= 52_000, chars
    assert live.event_count(doc) == 1

    runs = []
    for run in range(3):
        context = new_context(f"alice-run{run + 1}")
        context.add_init_script(TIMING_INIT_JS % repr(LAST))
        page = login(context, "alice")
        page.goto(f"/docs/{doc}")
        page.wait_for_function("window.__editableMs !== undefined", timeout=30_000)
        ready_ms, editable_ms = page.evaluate("[window.__readyMs, window.__editableMs]")
        editor = page.locator(".ProseMirror")
        expect(editor).to_have_attribute("contenteditable", "true")
        expect(editor.locator("> :last-child")).to_have_text(LAST)
        expect(editor.locator("> p")).to_have_count(PARAGRAPHS)
        runs.append({"ready_ms": round(ready_ms), "editable_ms": round(editable_ms)})
        print(
            f"run {run + 1}: data-ready after {ready_ms:.0f} ms,"
            f" editable with the last paragraph after {editable_ms:.0f} ms"
        )
        context.close()
    record_figures(
        "time_to_editable",
        {"characters": chars, "paragraphs": PARAGRAPHS, "runs": runs},
    )
