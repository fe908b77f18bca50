"""Editing as TipTap users expect: undo takes back only your own edits; shortcuts format."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import BrowserContext, expect

from tests.browser.conftest import Live, editor_text, type_at_end, user_page, wait_for_text


def test_undo_takes_back_only_your_own_edits(
    live: Live, new_context: Callable[..., BrowserContext]
) -> None:
    doc_id = live.document(live.tokens["alice"], bob="editor")
    alice = user_page(new_context, "alice", doc_id)
    bob = user_page(new_context, "bob", doc_id)
    type_at_end(alice, "alpha")
    wait_for_text(bob, "alpha")
    type_at_end(bob, " bravo")
    wait_for_text(alice, "alpha bravo")

    alice.locator(".ProseMirror").focus()
    alice.keyboard.press("Control+z")
    # Alice's word goes, on both screens and in the log; Bob's stays.
    for page in (alice, bob):
        page.wait_for_function(
            "() => !document.querySelector('.ProseMirror').textContent.includes('alpha')"
        )
        assert "bravo" in editor_text(page)
    expect(alice.locator("[data-testid=saved]")).to_have_attribute("data-state", "saved")
    assert "alpha" not in live.text(doc_id) and "bravo" in live.text(doc_id)

    alice.keyboard.press("Control+Shift+z")  # redo brings it back
    wait_for_text(bob, "alpha")


def test_keyboard_shortcuts_format_for_everyone(
    live: Live, new_context: Callable[..., BrowserContext]
) -> None:
    doc_id = live.document(live.tokens["alice"], bob="editor")
    alice = user_page(new_context, "alice", doc_id)
    bob = user_page(new_context, "bob", doc_id)
    type_at_end(alice, "plain ")
    alice.keyboard.press("Control+b")
    alice.keyboard.type("loud")
    # The toolbar follows the selection, for screen readers too.
    expect(alice.locator("[aria-label=Bold]")).to_have_attribute("aria-pressed", "true")
    alice.keyboard.press("Control+Alt+1")  # the paragraph becomes a heading
    expect(bob.locator(".ProseMirror h1 strong")).to_have_text("loud")
    expect(alice.locator("[aria-label='Heading 1']")).to_have_attribute("aria-pressed", "true")
