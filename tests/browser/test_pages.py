"""Logging in and out, the document list, creating, renaming and sharing through the pages."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import BrowserContext, expect

from tests.browser.conftest import Live, login


def test_log_in_create_rename_share_and_log_out(
    live: Live, new_context: Callable[..., BrowserContext]
) -> None:
    anonymous = new_context("anonymous").new_page()
    anonymous.goto("/")
    expect(anonymous).to_have_url(re.compile(r"/accounts/login/\?next=/$"))

    alice_context = new_context("alice")
    alice = login(alice_context, "alice")
    expect(alice).to_have_url(f"{live.url}/")

    alice.fill("input[name=title]", "Travel plans")
    alice.click("button[data-testid=create]")
    alice.wait_for_url(re.compile(r"/docs/[0-9a-f-]{36}$"))
    doc_id = alice.url.rsplit("/", 1)[1]
    expect(alice.locator("#editor-app")).to_have_attribute("data-ready", "true")
    expect(alice.locator("#editor-app")).to_have_attribute("data-role", "owner")
    expect(alice.locator(".ProseMirror")).to_have_attribute("contenteditable", "true")

    rename = alice.locator("form[data-testid=rename]")
    expect(rename.locator("input[name=title]")).to_have_value("Travel plans")
    rename.locator("input[name=title]").fill("Summer trip")
    rename.locator("[type=submit]").click()
    expect(alice.locator("form[data-testid=rename] input[name=title]")).to_have_value("Summer trip")
    expect(alice).to_have_title(re.compile("Summer trip"))

    share = alice.locator("form[data-testid=share]")
    share.locator("input[name=username]").fill("bob")
    share.locator("select[name=role]").select_option("viewer")
    share.locator("[type=submit]").click()
    members = alice.locator("[data-testid=members] li")
    expect(members.filter(has_text="bob")).to_have_count(1)
    expect(members.filter(has_text="bob")).to_contain_text("viewer")

    alice.goto("/")
    expect(alice.locator("[data-testid=documents] a", has_text="Summer trip")).to_have_attribute(
        "href", f"/docs/{doc_id}"
    )
    expect(alice.locator("[data-testid=documents] a", has_text="Travel plans")).to_have_count(0)

    bob_context = new_context("bob")
    bob = login(bob_context, "bob")
    bob.locator("[data-testid=documents] a", has_text="Summer trip").click()
    bob.wait_for_url(f"**/docs/{doc_id}")
    expect(bob.locator("#editor-app")).to_have_attribute("data-ready", "true")
    expect(bob.locator("#editor-app")).to_have_attribute("data-role", "viewer")
    expect(bob.locator(".ProseMirror")).to_have_attribute("contenteditable", "false")
    expect(bob.locator("form[data-testid=rename]")).to_have_count(0)
    expect(bob.locator("form[data-testid=share]")).to_have_count(0)

    # A rename reaches an open page of the document at once: its heading, tab and editor label.
    expect(bob.locator("#editor-app")).to_have_attribute("data-watching", "true")
    alice.goto(f"/docs/{doc_id}")
    rename = alice.locator("form[data-testid=rename]")
    rename.locator("input[name=title]").fill("Road trip")
    rename.locator("[type=submit]").click()
    expect(bob.locator("h1.doc-title")).to_have_text("Road trip")
    expect(bob).to_have_title(re.compile("^Road trip"))
    expect(bob.locator(".ProseMirror")).to_have_attribute("aria-label", re.compile("^Road trip"))
    expect(bob.locator("[data-testid=toasts]")).to_contain_text("alice renamed the document")

    # Carol was not invited: the document is not in her list and its page is not hers.
    carol = login(new_context("carol"), "carol")
    expect(carol.locator("[data-testid=documents] a", has_text="Summer trip")).to_have_count(0)
    assert carol.goto(f"/docs/{doc_id}").status == 404

    alice.click("button[data-testid=logout]")
    alice.wait_for_url(re.compile(r"/accounts/login/$"))
    expect(alice.locator("#id_username")).to_be_visible()
    alice.goto("/")
    expect(alice).to_have_url(re.compile(r"/accounts/login/\?next=/$"))
