"""Large pastes: a 5 MB paste is saved and shown to others; one over the limit is refused in
the browser, before it enters the document, with a message."""

from __future__ import annotations

import time
from collections.abc import Callable

from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.conftest import Live, editor_text, record_figures, type_at_end, user_page

LIMIT = 16 * 1024 * 1024  # PALIMPSEST_MAX_FRAME_BYTES's default

# Pastes `count` repetitions of `unit` as text/plain, the way the clipboard hands it over.
PASTE_JS = """
([unit, count]) => {
  const editor = document.querySelector('.ProseMirror')
  editor.focus()
  const data = new DataTransfer()
  data.setData('text/plain', unit.repeat(count))
  const init = { clipboardData: data, bubbles: true, cancelable: true }
  editor.dispatchEvent(new ClipboardEvent('paste', init))
}
"""


def _paste(page: Page, unit: str, count: int) -> None:
    page.evaluate(PASTE_JS, [unit, count])


def test_a_5_mb_paste_is_saved_and_reaches_the_other_browser(
    live: Live, new_context: Callable[..., BrowserContext]
) -> None:
    doc_id = live.document(live.tokens["alice"], bob="editor")
    alice = user_page(new_context, "alice", doc_id)
    bob = user_page(new_context, "bob", doc_id)
    type_at_end(alice, "start ")
    unit = "lorem ipsum dolor sit amet "  # 27 bytes
    count = 5_000_000 // len(unit) + 1
    started = time.monotonic()
    _paste(alice, unit, count)
    bob.wait_for_function(
        "(n) => document.querySelector('.ProseMirror').textContent.length >= n",
        arg=len(unit) * count,
        timeout=60_000,
    )
    seconds = time.monotonic() - started
    expect(alice.locator("[data-testid=saved]")).to_have_attribute(
        "data-state", "saved", timeout=60_000
    )
    text = live.text(doc_id)
    assert text.count("lorem ipsum") == count and text.startswith("start ")
    record_figures("paste_5mb_to_other_browser_s", round(seconds, 2))
    print(f"5 MB paste: in the other browser after {seconds:.2f} s")
    expect(alice.locator(".toast--error")).to_have_count(0)


def test_a_paste_over_the_limit_is_refused_before_it_enters_the_document(
    live: Live, new_context: Callable[..., BrowserContext]
) -> None:
    doc_id = live.document(live.tokens["alice"], bob="editor")
    alice = user_page(new_context, "alice", doc_id)
    bob = user_page(new_context, "bob", doc_id)
    type_at_end(alice, "before")
    _paste(alice, "x" * 1024, LIMIT // 1024 + 16)  # 16 MiB and a bit: over the limit
    toast = alice.locator(".toast--error")
    expect(toast).to_contain_text("too large to save")
    expect(toast).to_contain_text("16.0 MB")
    assert "xxxx" not in editor_text(alice), "nothing of the paste entered the document"
    # The connection stays up and later typing is saved and seen, as if nothing happened.
    type_at_end(alice, " after")
    bob.wait_for_function(
        "() => document.querySelector('.ProseMirror').textContent.includes('before after')"
    )
    expect(alice.locator("[data-testid=saved]")).to_have_attribute("data-state", "saved")
    expect(alice.locator("[data-testid=connection]")).not_to_have_attribute("data-state", "closed")
    assert live.text(doc_id).strip() == "before after"
