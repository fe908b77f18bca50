"""Browser fixtures: a live server with users, Debian's Chromium driven by Playwright."""

from __future__ import annotations

import json
import os
import shutil
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from tests.conftest import require
from tests.interop.live import ROOT, LiveServer

CHROMIUM = "/usr/bin/chromium"
BUNDLE = ROOT / "frontend" / "static" / "frontend" / "editor.js"
PASSWORD = "correct-horse-1"
USERS = ("alice", "bob", "carol")
FIGURES = ROOT / "var" / "browser"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this folder is a browser test."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser_available() -> None:
    """Chromium where Playwright is told to find it, and the built bundle the pages load."""
    require(f"Chromium at {CHROMIUM}", os.path.exists(CHROMIUM))
    require(f"the frontend bundle ({BUNDLE.relative_to(ROOT)}; make frontend)", BUNDLE.exists())


class Live(LiveServer):
    """A LiveServer plus what browser tests ask of it."""

    tokens: dict[str, str]

    @property
    def url(self) -> str:
        """The HTTP origin."""
        return f"http://127.0.0.1:{self.port}"

    def shell(self, code: str) -> str:
        """Run Python in `manage.py shell` against this server's database; its stdout."""
        return self.manage("shell", "-v", "0", "-c", textwrap.dedent(code))

    def text(self, doc_id: str) -> str:
        """The document's plain text, rebuilt from the server's event log."""
        out = self.shell(
            f"""
            import json, uuid
            from pycrdt import Doc
            from events.selectors import document_replay
            from collab.sync.html import document_text
            doc = Doc()
            for update in document_replay(document_id=uuid.UUID("{doc_id}")).updates:
                doc.apply_update(update)
            print(json.dumps(document_text(doc)))
            """
        )
        return str(json.loads(out))


@pytest.fixture(scope="session")
def collected_static(tmp_path_factory: pytest.TempPathFactory, browser_available: None) -> Path:
    """`collectstatic` once per session (it takes ~6 s: hashing and compressing every file);
    each server gets a copy of the result in its own STATIC_ROOT (var dir's `static/`)."""
    var_dir = tmp_path_factory.mktemp("static-once")
    LiveServer(var_dir).manage("collectstatic", "--noinput", "-v", "0")
    return var_dir / "static"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, collected_static: Path) -> Iterator[Live]:
    """One server per module (its own database; users alice, bob, carol with tokens)."""
    server = Live(tmp_path_factory.mktemp("browser"))
    shutil.copytree(collected_static, server.var_dir / "static", dirs_exist_ok=True)
    server.start()
    out = server.shell(
        f"""
        import json
        from django.contrib.auth.models import User
        from collab.services import token_issue
        tokens = {{}}
        for name in {USERS!r}:
            user = User.objects.create_user(name, password={PASSWORD!r})
            tokens[name] = token_issue(user=user)
        print(json.dumps(tokens))
        """
    )
    server.tokens = json.loads(out)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def playwright(browser_available: None) -> Iterator[Playwright]:
    """The sync Playwright driver."""
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """Debian's Chromium, headless (Playwright never downloads a browser here)."""
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM,
        headless=True,
        args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    )
    yield browser
    browser.close()


@pytest.fixture
def new_context(browser: Browser, live: Live) -> Iterator[Callable[..., BrowserContext]]:
    """Fresh browser contexts (one per user), closed after the test; console output is kept
    and printed, so a failing test shows what the pages said."""
    contexts: list[BrowserContext] = []
    console: list[str] = []

    def _new(label: str = "", **options: Any) -> BrowserContext:
        context = browser.new_context(base_url=live.url, **options)
        context.set_default_timeout(10_000)
        tag = label or f"context{len(contexts)}"

        def watch(page: Page) -> None:
            page.on("console", lambda m: console.append(f"[{tag}] {m.type}: {m.text}"))
            page.on("pageerror", lambda e: console.append(f"[{tag}] pageerror: {e}"))

        context.on("page", watch)
        contexts.append(context)
        return context

    yield _new
    for context in contexts:
        context.close()
    if console:
        print("browser console:", *console, sep="\n  ", file=sys.stderr)


def login(context: BrowserContext, username: str) -> Page:
    """Log in through the real form; the page, on the document list."""
    page = context.new_page()
    page.goto("/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: url.endswith("/"))
    return page


def open_doc(context: BrowserContext, doc_id: str, page: Page | None = None) -> Page:
    """Open a document's editor (in `page` or a new one) and wait until it is usable."""
    page = page or context.new_page()
    page.goto(f"/docs/{doc_id}")
    page.wait_for_selector("#editor-app[data-ready=true]")
    return page


def user_page(new_context: Callable[..., BrowserContext], username: str, doc_id: str) -> Page:
    """A fresh context for `username`, logged in, with the document open."""
    context = new_context(username)
    return open_doc(context, doc_id, login(context, username))


def record_figures(key: str, value: Any) -> None:
    """Add a measurement to var/browser/figures.json (other tests' keys are kept)."""
    FIGURES.mkdir(parents=True, exist_ok=True)
    path = FIGURES / "figures.json"
    figures = json.loads(path.read_text()) if path.exists() else {}
    figures[key] = value
    figures["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    path.write_text(json.dumps(figures, indent=2) + "\n")


# Text of the editor as a person reads it: other people's carets are widgets inside the
# editable DOM whose labels (user names) and word joiners must not count as document text.
EDITOR_TEXT_JS = """
(root) => {
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT)
  let text = ''
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (node.parentElement.closest('.collaboration-carets__caret')) continue
    text += node.data
  }
  return text.replace(/\\u2060/g, '')
}
"""


def editor_text(page: Page) -> str:
    """The document text the page shows, without caret labels."""
    return str(page.locator(".ProseMirror").evaluate(EDITOR_TEXT_JS))


def wait_for_text(page: Page, needle: str, timeout: float = 10_000) -> None:
    """Wait until the editor shows `needle` (caret labels excluded)."""
    page.wait_for_function(
        f"(needle) => ({EDITOR_TEXT_JS})(document.querySelector('.ProseMirror')).includes(needle)",
        arg=needle,
        timeout=timeout,
    )


def type_at_end(page: Page, text: str, *, new_paragraph: bool = False, delay: float = 0) -> None:
    """Put the caret at the end of the document and type."""
    # With pauses a person would make: ProseMirror takes the browser's selection from
    # `selectionchange` events, which come after the click or key that moved it; a key
    # pressed at once acts on the old selection.
    page.locator(".ProseMirror > :last-child").click()
    page.wait_for_timeout(50)
    page.keyboard.press("End")
    page.wait_for_timeout(50)
    if new_paragraph:
        page.keyboard.press("Enter")
    page.keyboard.type(text, delay=delay)
