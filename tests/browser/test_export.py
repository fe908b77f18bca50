"""Export from the editor: progress on the page, then the PDF through the download link."""

from __future__ import annotations

import io
from collections.abc import Callable

import pypdf
from playwright.sync_api import BrowserContext, expect

from tests.browser.conftest import Live, type_at_end, user_page

# Every state the export panel shows, in order: (data-state, progress value, text).
WATCH_EXPORT_JS = """
() => {
  const status = document.querySelector('[data-testid=export-status]')
  window.__exportStates = []
  const note = () => {
    const entry = [status.dataset.state, status.querySelector('progress').value,
                   status.querySelector('.export-status__text')?.textContent ?? status.textContent]
    const last = window.__exportStates[window.__exportStates.length - 1]
    if (!last || last[0] !== entry[0] || last[1] !== entry[1]) window.__exportStates.push(entry)
  }
  new MutationObserver(note).observe(status, {
    subtree: true, childList: true, characterData: true, attributes: true,
  })
}
"""


def test_export_shows_progress_and_downloads_the_pdf(
    live: Live, new_context: Callable[..., BrowserContext]
) -> None:
    doc = live.document(live.tokens["alice"])
    alice = user_page(new_context, "alice", doc)
    typed = "Quarterly figures exported from the browser 4711"
    type_at_end(alice, typed)
    expect(alice.locator("[data-testid=saved]")).to_have_attribute("data-state", "saved")

    alice.evaluate(WATCH_EXPORT_JS)
    alice.click("button[data-testid=export]")
    status = alice.locator("[data-testid=export-status]")
    expect(status).to_have_attribute("data-state", "done", timeout=30_000)
    link = alice.locator("a[data-testid=export-download]")
    expect(link).to_be_visible()
    assert link.get_attribute("download") is not None
    assert "/api/exports/" in (link.get_attribute("href") or "")

    states = alice.evaluate("window.__exportStates")
    print("export states:", states)
    kinds = [state for state, _, _ in states]
    assert kinds[0] == "pending", states
    assert kinds[-1] == "done", states
    assert "failed" not in kinds, states
    running = [value for state, value, _ in states if state == "running"]
    assert running, f"no running state with progress shown: {states}"
    assert all(0 <= value <= 100 for value in running), states
    values = [value for _, value, _ in states]
    assert values == sorted(values), f"progress went backwards: {states}"
    assert states[-1][1] == 100
    expect(alice.locator("[data-testid=export-status] progress")).to_have_attribute("value", "100")

    with alice.expect_download() as download_info:
        link.click()
    download = download_info.value
    assert download.failure() is None
    pdf = download.path().read_bytes()
    assert pdf.startswith(b"%PDF-")
    text = "".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf)).pages)
    assert typed in text, text
