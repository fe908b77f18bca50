"""Access changes in the browser: a demoted editor's page turns read-only and says why; the
owner removes a member from the share panel (after confirming) and that member's page closes;
logging out closes the page's socket; tokens are listed and revoked on their own page."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import BrowserContext, expect

from tests.browser.conftest import Live, login, open_doc, type_at_end, user_page, wait_for_text


def test_a_demoted_editor_s_page_turns_read_only_and_says_why(
    live: Live, new_context: Callable[..., BrowserContext]
) -> None:
    doc_id = live.document(live.tokens["alice"], bob="editor")
    bob = user_page(new_context, "bob", doc_id)
    type_at_end(bob, "written while an editor")
    expect(bob.locator("[data-testid=saved]")).to_have_attribute("data-state", "saved")
    live.api(
        "POST",
        f"/docs/{doc_id}/members",
        live.tokens["alice"],
        {"username": "bob", "role": "viewer"},
    )
    expect(bob.locator(".ProseMirror")).to_have_attribute("contenteditable", "false", timeout=5000)
    expect(bob.locator(".toast--error")).to_contain_text("no longer edit")
    expect(bob.locator(".ProseMirror")).to_have_attribute("aria-label", re.compile("read only"))
    # Still connected as a reader: the owner's next words arrive.
    alice = user_page(new_context, "alice", doc_id)
    type_at_end(alice, " and read after")
    wait_for_text(bob, "and read after")
    assert "written while an editor" in live.text(doc_id)


def test_the_owner_removes_a_member_whose_page_closes(
    live: Live, new_context: Callable[..., BrowserContext]
) -> None:
    doc_id = live.document(live.tokens["alice"], carol="editor")
    carol = user_page(new_context, "carol", doc_id)
    alice = user_page(new_context, "alice", doc_id)
    member = alice.locator("[data-testid=members] li[data-member=carol]")
    member.locator("summary").click()
    member.get_by_role("button", name="Remove carol").click()
    expect(alice.locator(".messages")).to_contain_text("carol no longer has access")
    expect(alice.locator("[data-testid=members] li[data-member=carol]")).to_have_count(0)
    expect(carol.locator("[data-testid=connection]")).to_have_attribute(
        "data-state", "closed", timeout=5000
    )
    expect(carol.locator(".toast--error")).to_contain_text("access to this document was removed")


def test_logging_out_closes_the_page_s_socket(
    live: Live, new_context: Callable[..., BrowserContext]
) -> None:
    doc_id = live.document(live.tokens["alice"])
    context = new_context("alice")
    editor = open_doc(context, doc_id, login(context, "alice"))
    expect(editor.locator("[data-testid=connection]")).to_have_attribute("data-state", "connected")
    other_tab = context.new_page()
    other_tab.goto("/")
    other_tab.click("button[data-testid=logout]")
    expect(editor.locator("[data-testid=connection]")).to_have_attribute(
        "data-state", "closed", timeout=5000
    )


def test_tokens_are_listed_and_revoked_on_their_own_page(
    live: Live, new_context: Callable[..., BrowserContext]
) -> None:
    token = live.token("carol")
    page = login(new_context("carol"), "carol")
    page.click("[data-testid=tokens-link]")
    row = page.locator(f"[data-testid=tokens] tr[data-token='{token[:8]}']")
    expect(row).to_have_count(1)
    expect(page.locator("body")).not_to_contain_text(token)  # shown only when it was made
    row.get_by_role("button").click()
    expect(page.locator(".messages")).to_contain_text("Token revoked")
    expect(page.locator(f"[data-testid=tokens] tr[data-token='{token[:8]}']")).to_have_count(0)
    status, _ = live.api_status("GET", "/docs", token)
    assert status == 401
