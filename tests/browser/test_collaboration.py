"""Two people in one document: text, carets, latency, read-only viewers, offline catch-up."""

from __future__ import annotations

import math
from collections.abc import Callable

from playwright.sync_api import BrowserContext, Locator, Page, expect

from tests.browser.conftest import (
    EDITOR_TEXT_JS,
    FIGURES,
    Live,
    editor_text,
    login,
    open_doc,
    record_figures,
    type_at_end,
    user_page,
    wait_for_text,
)

SECOND = 1000  # ms: the "within a second"

# In the receiving page: the time each character of `seq` first appears after `marker`
# (a MutationObserver callback runs right after ProseMirror changes the DOM).
WATCH_ARRIVALS_JS = f"""
([marker, seq]) => {{
  const root = document.querySelector('.ProseMirror')
  const textOf = {EDITOR_TEXT_JS}
  window.__arrivals = []
  const check = () => {{
    const text = textOf(root)
    const at = text.lastIndexOf(marker)
    if (at < 0) return
    const tail = text.slice(at + marker.length)
    let n = 0
    while (n < seq.length && n < tail.length && tail[n] === seq[n]) n++
    const now = Date.now()
    while (window.__arrivals.length < n) window.__arrivals.push(now)
  }}
  const options = {{ subtree: true, childList: true, characterData: true }}
  new MutationObserver(check).observe(root, options)
  check()
}}
"""

# In the typing page: the time of every keydown (same machine clock as the receiver's).
WATCH_KEYDOWNS_JS = """
() => {
  window.__keydowns = []
  document.addEventListener('keydown', () => window.__keydowns.push(Date.now()), true)
}
"""


def remote_carets(page: Page) -> Locator:
    """Labels of other people's carets in the page's editor."""
    return page.locator(".ProseMirror .collaboration-carets__caret .collaboration-carets__label")


def nearest_rank(values: list[int], q: float) -> int:
    """The q-quantile of `values` by the nearest-rank method."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def test_two_editors_see_each_others_text_and_carets(
    live: Live, new_context: Callable[..., BrowserContext]
) -> None:
    doc = live.document(live.tokens["alice"], bob="editor")
    alice = user_page(new_context, "alice", doc)
    bob = user_page(new_context, "bob", doc)
    expect(alice.locator("#editor-app")).to_have_attribute("data-role", "owner")
    expect(bob.locator("#editor-app")).to_have_attribute("data-role", "editor")
    expect(alice.locator("[data-testid=presence] li[data-user=bob]")).to_have_count(1)
    expect(bob.locator("[data-testid=presence] li[data-user=alice]")).to_have_count(1)

    type_at_end(alice, "Alice writes here.")
    wait_for_text(bob, "Alice writes here.", timeout=SECOND)
    expect(remote_carets(bob)).to_have_text(["alice"], timeout=SECOND)

    type_at_end(bob, "Bob answers.", new_paragraph=True)
    wait_for_text(alice, "Bob answers.", timeout=SECOND)
    expect(remote_carets(alice)).to_have_text(["bob"], timeout=SECOND)

    # Keystroke latency: alice types 40 characters in a paragraph of her own; bob's page
    # notes when each one shows up.
    marker, seq = "Latency:", "abcdefghijklmnopqrstuvwxyz0123456789wxyz"
    bob.evaluate(WATCH_ARRIVALS_JS, [marker, seq])
    type_at_end(alice, marker, new_paragraph=True)
    wait_for_text(bob, marker)
    alice.evaluate(WATCH_KEYDOWNS_JS)
    alice.keyboard.type(seq, delay=60)
    bob.wait_for_function(f"window.__arrivals.length === {len(seq)}", timeout=SECOND)
    keydowns = alice.evaluate("window.__keydowns")
    arrivals = bob.evaluate("window.__arrivals")
    assert len(keydowns) == len(seq), keydowns
    latencies = [arrived - pressed for pressed, arrived in zip(keydowns, arrivals, strict=True)]
    assert all(latency >= 0 for latency in latencies), latencies
    figures = {
        "keystrokes": len(latencies),
        "p50_ms": nearest_rank(latencies, 0.50),
        "p95_ms": nearest_rank(latencies, 0.95),
        "max_ms": max(latencies),
        "samples_ms": latencies,
    }
    print(
        f"keystroke -> other browser, {len(latencies)} keystrokes: p50 {figures['p50_ms']} ms,"
        f" p95 {figures['p95_ms']} ms, max {figures['max_ms']} ms"
    )
    record_figures("keystroke_latency", figures)
    expected = f"Alice writes here.Bob answers.{marker}{seq}"
    assert editor_text(bob) == editor_text(alice) == expected
    expect(alice.locator("[data-testid=saved]")).to_have_attribute("data-state", "saved")
    assert live.text(doc) == f"Alice writes here.\n\nBob answers.\n\n{marker}{seq}"


def test_screenshot_with_two_carets(live: Live, new_context: Callable[..., BrowserContext]) -> None:
    doc = live.document(live.tokens["alice"], bob="editor")
    viewport = {"width": 1200, "height": 700}
    alice = user_page(lambda label: new_context(label, viewport=viewport), "alice", doc)
    bob = user_page(lambda label: new_context(label, viewport=viewport), "bob", doc)
    type_at_end(alice, "Alice is typing in the first paragraph")
    type_at_end(bob, "Bob has selected this whole line", new_paragraph=True)
    bob.keyboard.press("Shift+Home")
    alice.keyboard.type(" and keeps going")
    expect(remote_carets(bob)).to_have_text(["alice"])
    expect(remote_carets(alice)).to_have_text(["bob"])
    wait_for_text(bob, "keeps going")
    # Bob's own selection is the browser's: it covers his line.
    assert bob.evaluate("getSelection().toString()") == "Bob has selected this whole line"

    path = FIGURES / "editor-two-carets.png"
    FIGURES.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    bob.screenshot(path=path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert path.stat().st_size > 20_000, path.stat().st_size


def test_viewer_cannot_change_the_document(
    live: Live, new_context: Callable[..., BrowserContext]
) -> None:
    doc = live.document(live.tokens["alice"], carol="viewer")
    alice = user_page(new_context, "alice", doc)
    type_at_end(alice, "Written by the owner.")
    expect(alice.locator("[data-testid=saved]")).to_have_attribute("data-state", "saved")

    carol = user_page(new_context, "carol", doc)
    expect(carol.locator("#editor-app")).to_have_attribute("data-role", "viewer")
    expect(carol.locator(".ProseMirror")).to_have_attribute("contenteditable", "false")
    wait_for_text(carol, "Written by the owner.")
    before = live.event_count(doc)
    assert before > 0

    carol.locator(".ProseMirror").click()
    carol.keyboard.press("Control+End")
    carol.keyboard.type("Carol was here")
    carol.keyboard.press("Enter")
    carol.keyboard.press("Backspace")
    carol.wait_for_timeout(1000)
    assert editor_text(carol) == "Written by the owner."
    assert "Carol" not in editor_text(alice)
    assert live.event_count(doc) == before
    assert live.text(doc) == "Written by the owner."

    # The same check sees an edit when there is one: the owner's next keystrokes count.
    type_at_end(alice, " More.")
    wait_for_text(carol, "Written by the owner. More.")
    expect(alice.locator("[data-testid=saved]")).to_have_attribute("data-state", "saved")
    assert live.event_count(doc) > before
    assert live.text(doc) == "Written by the owner. More."


# Records in this page's y-indexeddb store ("updates": one record per Yjs update).
IDB_COUNT_JS = """
(name) => new Promise((resolve, reject) => {
  const open = indexedDB.open(name)
  open.onerror = () => reject(open.error)
  open.onsuccess = () => {
    const db = open.result
    const count = db.transaction('updates', 'readonly').objectStore('updates').count()
    count.onsuccess = () => { db.close(); resolve(count.result) }
    count.onerror = () => { db.close(); reject(count.error) }
  }
})
"""


def test_offline_edits_reach_everyone_after_reconnecting(
    live: Live, new_context: Callable[..., BrowserContext]
) -> None:
    doc = live.document(live.tokens["alice"], bob="editor")
    alice_context = new_context("alice")
    alice = open_doc(alice_context, doc, login(alice_context, "alice"))
    bob = user_page(new_context, "bob", doc)
    type_at_end(alice, "Online start.")
    wait_for_text(bob, "Online start.")
    expect(alice.locator("[data-testid=saved]")).to_have_attribute("data-state", "saved")
    events_before = live.event_count(doc)
    idb = alice.locator("#editor-app").get_attribute("data-idb")
    assert idb
    stored_before = alice.evaluate(IDB_COUNT_JS, idb)

    alice_context.set_offline(True)
    expect(alice.locator("[data-testid=connection]")).to_have_attribute("data-state", "offline")
    offline_text = " Typed offline."
    type_at_end(alice, offline_text)
    expect(alice.locator("[data-testid=saved]")).to_have_attribute("data-state", "unsaved")
    # y-indexeddb writes each update to IndexedDB as it happens (one record per keystroke),
    # in a transaction of its own; closing the page before those transactions commit could
    # abort them, so wait until the store holds them all.
    alice.wait_for_function(
        f"async (name) => (await ({IDB_COUNT_JS})(name)) >= {stored_before + len(offline_text)}",
        arg=idb,
    )
    alice.close()
    assert "Typed offline" not in editor_text(bob)
    bob.wait_for_timeout(500)
    assert "Typed offline" not in editor_text(bob)
    expect(bob.locator("[data-testid=connection]")).to_have_attribute("data-state", "connected")
    assert live.event_count(doc) == events_before

    alice_context.set_offline(False)
    alice = open_doc(alice_context, doc)
    wait_for_text(alice, "Online start. Typed offline.")
    wait_for_text(bob, "Online start. Typed offline.")
    expect(alice.locator("[data-testid=connection]")).to_have_attribute("data-state", "connected")
    expect(alice.locator("[data-testid=saved]")).to_have_attribute("data-state", "saved")
    assert live.text(doc) == "Online start. Typed offline."
    assert live.event_count(doc) > events_before
    assert editor_text(bob) == editor_text(alice) == "Online start. Typed offline."
