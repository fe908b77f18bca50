"""The editor's History panel: one person types while another scrubs the slider; the view at
each edit matches `content?at=`, arrow keys step one edit, and a replay plays to the head."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import BrowserContext, Locator, Page, expect

from tests.browser.conftest import (
    EDITOR_TEXT_JS,
    Live,
    record_figures,
    type_at_end,
    user_page,
    wait_for_text,
)

# Set the slider as a person dragging it would: its value, then an input event.
SET_SLIDER_JS = """
([el, value]) => {
  window.__asked = performance.now()
  el.value = String(value)
  el.dispatchEvent(new Event('input', { bubbles: true }))
}
"""
# Milliseconds from the last SET_SLIDER_JS to now (called once the view shows that edit).
SINCE_ASKED_JS = "() => performance.now() - window.__asked"


def _squeezed(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _shown(view: Locator) -> str:
    return str(view.locator(".ProseMirror").evaluate(EDITOR_TEXT_JS))


def _content(page: Page, live: Live, doc: str, seq: int) -> str:
    response = page.request.get(f"{live.url}/api/docs/{doc}/content?at={seq}&format=text")
    assert response.ok, response.status
    return str(response.json()["content"])


def test_one_types_while_the_other_scrubs_the_history(
    live: Live, new_context: Callable[..., BrowserContext]
) -> None:
    doc = live.document(live.tokens["alice"], bob="editor")
    alice = user_page(new_context, "alice", doc)
    bob = user_page(new_context, "bob", doc)
    type_at_end(alice, "First words.")
    type_at_end(alice, "A second paragraph.", new_paragraph=True)
    wait_for_text(bob, "A second paragraph.")
    expect(alice.locator("[data-testid=saved]")).to_have_attribute("data-state", "saved")

    bob.get_by_role("button", name="History").click()
    slider = bob.get_by_role("slider", name="Edit")
    view = bob.locator("[data-history-view]")
    expect(slider).not_to_have_attribute("max", "0")
    head = int(slider.get_attribute("max") or 0)
    expect(view).to_have_attribute("data-seq", str(head))
    assert _squeezed(_shown(view)) == _squeezed(_content(bob, live, doc, head))

    # Alice goes on typing; the slider's end follows the head while the panel is open.
    type_at_end(alice, " And more.", delay=30)
    expect(alice.locator("[data-testid=saved]")).to_have_attribute("data-state", "saved")
    bob.wait_for_function(
        "([el, head]) => Number(el.max) > head", arg=[slider.element_handle(), head], timeout=10_000
    )
    head = int(slider.get_attribute("max") or 0)

    # Arrow keys step one edit.
    slider.focus()
    bob.keyboard.press("Home")
    expect(view).to_have_attribute("data-seq", "0")
    assert _shown(view) == ""
    for seq in (1, 2, 3):
        bob.keyboard.press("ArrowRight")
        expect(view).to_have_attribute("data-seq", str(seq))
        assert _squeezed(_shown(view)) == _squeezed(_content(bob, live, doc, seq)), seq
    expect(bob.locator("[data-testid=history-info]")).to_contain_text("Edit 3 of")
    expect(bob.locator("[data-testid=history-info]")).to_contain_text("by alice")

    # Any edit, as a drag would ask for it, while alice types on.
    timings = []
    for seq in sorted({head // 3, head // 2, head - 1, head}):
        bob.evaluate(SET_SLIDER_JS, [slider.element_handle(), seq])
        expect(view).to_have_attribute("data-seq", str(seq))
        timings.append(round(bob.evaluate(SINCE_ASKED_JS)))
        assert _squeezed(_shown(view)) == _squeezed(_content(bob, live, doc, seq)), seq
        alice.keyboard.type("!")
    print(f"slider stop -> view shown, {len(timings)} stops on a {head}-edit log: {timings} ms")
    record_figures("history_slider_small_log_ms", timings)

    # The view is read-only and the live editor is untouched by scrubbing.
    expect(view.locator(".ProseMirror")).to_have_attribute("contenteditable", "false")
    wait_for_text(bob, "And more.!")

    # Play replays to the head, then stops.
    bob.keyboard.press("Home")
    expect(view).to_have_attribute("data-seq", "0")
    play = bob.locator("[data-testid=history-play]")
    play.click()
    expect(play).to_have_attribute("aria-pressed", "true")
    expect(play).to_have_attribute("aria-pressed", "false", timeout=20_000)
    expect(view).to_have_attribute("data-seq", slider.get_attribute("max") or "")

    bob.get_by_role("button", name="History").click()
    expect(bob.locator("[data-testid=history]")).to_be_hidden()


def test_show_authors_marks_each_authors_text_live_and_in_the_history(
    live: Live, new_context: Callable[..., BrowserContext]
) -> None:
    doc = live.document(live.tokens["alice"], bob="editor")
    alice = user_page(new_context, "alice", doc)
    bob = user_page(new_context, "bob", doc)
    type_at_end(alice, "Alice wrote this.")
    wait_for_text(bob, "Alice wrote this.")
    type_at_end(bob, "Bob wrote that.", new_paragraph=True)
    wait_for_text(alice, "Bob wrote that.")

    switch = bob.get_by_role("switch", name="Show authors")
    expect(switch).to_have_attribute("aria-checked", "false")
    live_editor = bob.locator("[data-testid=editor]")
    expect(live_editor.locator("[data-author]")).to_have_count(0)
    switch.click()
    expect(switch).to_have_attribute("aria-checked", "true")
    expect(live_editor.locator("[data-author=alice]")).to_have_text("Alice wrote this.")
    expect(live_editor.locator("[data-author=bob]")).to_have_text("Bob wrote that.")
    legend = bob.locator("[data-testid=authors-legend] li")
    expect(legend).to_have_text(["alice", "bob"])
    # The carets' colours, from the server.
    colours = {
        entry["author"]: entry["color"]
        for entry in bob.request.get(f"{live.url}/api/docs/{doc}/authors").json()
    }
    style = live_editor.locator("[data-author=alice]").first.get_attribute("style") or ""
    assert colours["alice"] in style, (style, colours)

    # New text is coloured as it arrives (alice's caret ends up in bob's paragraph).
    type_at_end(alice, " More from alice.", delay=20)
    expect(live_editor.locator("[data-author=alice]")).to_have_text(
        ["Alice wrote this.", "More from alice."]
    )

    # The history view is coloured too.
    bob.get_by_role("button", name="History").click()
    view = bob.locator("[data-history-view]")
    expect(view).to_have_attribute("data-seq", re.compile(r"^[1-9][0-9]*$"))
    expect(view.locator("[data-author=alice]")).to_have_text(
        ["Alice wrote this.", "More from alice."]
    )
    expect(view.locator("[data-author=bob]")).to_have_text("Bob wrote that.")

    switch.click()
    expect(live_editor.locator("[data-author]")).to_have_count(0)
    expect(view.locator("[data-author]")).to_have_count(0)
    expect(bob.locator("[data-testid=authors-legend]")).to_be_hidden()


def test_name_a_version_compare_it_with_now_and_restore_it_for_everyone(
    live: Live, new_context: Callable[..., BrowserContext]
) -> None:
    doc = live.document(live.tokens["alice"], bob="editor", carol="viewer")
    alice = user_page(new_context, "alice", doc)
    bob = user_page(new_context, "bob", doc)
    type_at_end(alice, "The first draft.")
    expect(alice.locator("[data-testid=saved]")).to_have_attribute("data-state", "saved")
    wait_for_text(bob, "The first draft.")

    bob.get_by_role("button", name="History").click()
    view = bob.locator("[data-history-view]")
    slider = bob.get_by_role("slider", name="Edit")
    expect(slider).not_to_have_attribute("max", "0")
    draft = int(slider.get_attribute("max") or 0)
    expect(view).to_have_attribute("data-seq", str(draft))
    bob.get_by_label("Version name").fill("First draft")
    bob.locator("[data-testid=version-name] [type=submit]").click()
    expect(bob.locator("[data-testid=versions] li")).to_have_count(1)
    expect(bob.locator("[data-testid=versions] li")).to_contain_text(f"edit {draft}")

    type_at_end(alice, " Then alice rewrote it all.", delay=10)
    expect(alice.locator("[data-testid=saved]")).to_have_attribute("data-state", "saved")
    bob.locator("[data-testid=versions] button", has_text="First draft").click()
    expect(view).to_have_attribute("data-seq", str(draft))

    bob.locator("[data-testid=history-diff]").click()
    diff = bob.locator("[data-testid=history-diff-view]")
    expect(diff.locator("ins[data-author=alice]")).to_have_text("Then alice rewrote it all.")

    bob.locator("[data-testid=history-restore]").click()
    expect(bob.locator("[data-testid=restore-confirm]")).to_be_visible()
    bob.locator("[data-testid=restore-yes]").click()
    # The restore is a new event, seen live by everyone.
    alice.wait_for_function(
        f"() => !({EDITOR_TEXT_JS})(document.querySelector('.ProseMirror')).includes('rewrote')",
        timeout=10_000,
    )
    wait_for_text(alice, "The first draft.")
    history = bob.request.get(f"{live.url}/api/docs/{doc}/history?limit=1000").json()
    assert history["events"][-1]["kind"] == "restore"
    assert history["events"][-1]["actor"] == "bob"

    # A viewer may look and compare, not name or restore.
    carol = user_page(new_context, "carol", doc)
    carol.get_by_role("button", name="History").click()
    expect(carol.locator("[data-testid=versions] li")).to_have_count(1)
    expect(carol.locator("[data-testid=version-name]")).to_have_count(0)
    expect(carol.locator("[data-testid=history-restore]")).to_have_count(0)
