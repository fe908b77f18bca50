"""The editor's History panel on a long log: from stopping the slider to the view.

    .venv/bin/python bench/history_view.py [--samples 20] [--edits N]

A live server (its own SQLite database) gets the seph-blog1 trace as one user's edits in the
editor's layout (137,155 events, appended as rooms append them, snapshots as rooms ask for
them, then the checkpoint fill the compaction sweep runs). Debian's Chromium opens the
editor, opens History, and sets the slider to `--samples` random edits, as a drag stopping
there would, with Show authors on. Prints p50 / p95 / max of the time from the slider's input
event to the view showing that edit with its author coloured (the state fetched, a fresh
read-only TipTap over it, the colours), measured in the page, and checks each view against
`content?at=`.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import tempfile
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402

from tests.browser.conftest import CHROMIUM, EDITOR_TEXT_JS, PASSWORD  # noqa: E402
from tests.interop.live import LiveServer  # noqa: E402

# In the page: set the slider, and note when the view shows that edit.
ASK_JS = """
([slider, seq]) => new Promise((resolve) => {
  const view = document.querySelector('[data-history-view]')
  const asked = performance.now()
  // Shown once the view is of that edit and its authors are coloured.
  const observer = new MutationObserver(() => {
    if (view.dataset.seq === String(seq) && view.querySelector('[data-author="alice"]')) {
      observer.disconnect()
      resolve(performance.now() - asked)
    }
  })
  observer.observe(view, { attributes: true, childList: true, subtree: true })
  setTimeout(() => { observer.disconnect(); resolve(null) }, 10000)
  slider.value = String(seq)
  slider.dispatchEvent(new Event('input', { bubbles: true }))
})
"""

LOAD = """
from django.contrib.auth.models import User
from bench.storage import _updates
from collab.services import document_create
from events.authors import update_claim
from events.compaction import checkpoints_fill, snapshot_compact
from events.services import NewEvent, event_append_batch
user = User.objects.create_user("alice", password={password!r})
document = document_create(owner=user, title="seph-blog1")
updates, _ = _updates({edits!r}, set())
for start in range(0, len(updates), 1000):
    event_append_batch(items=[
        NewEvent(document_id=document.id, update=u, actor_id=user.pk)
        for u in updates[start : start + 1000]
    ])
    snapshot_compact(document_id=document.id)
checkpoints_fill(document_id=document.id)
snapshot_compact(document_id=document.id)
# The writer's client id, claimed for her as a socket's first update would claim it.
update_claim(document_id=document.id, update=updates[1], actor_id=user.pk)
print(document.id, len(updates))
"""


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def main() -> None:
    """Load the log, drive the panel, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--edits", type=int, default=None, help="default: the whole trace")
    args = parser.parse_args()
    server = LiveServer(Path(tempfile.mkdtemp(prefix="palimpsest-history-view-")))
    server.manage("collectstatic", "--noinput", "-v", "0")
    server.start()
    try:
        code = textwrap.dedent(LOAD.format(password=PASSWORD, edits=args.edits))
        doc_id, head = server.manage("shell", "-c", code).split()[-2:]
        print(f"log: {int(head):,} edits")
        # From edit 2 on: the first edit of the trace makes an empty paragraph (no text).
        seqs = sorted(random.Random(7).sample(range(2, int(head) + 1), args.samples))
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM,
                args=[
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-background-networking",
                ],
            )
            page = browser.new_context(base_url=f"http://127.0.0.1:{server.port}").new_page()
            page.set_default_timeout(60_000)
            page.goto("/accounts/login/")
            page.fill("#id_username", "alice")
            page.fill("#id_password", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(lambda url: url.endswith("/"))
            page.goto(f"/docs/{doc_id}")
            page.wait_for_selector("#editor-app[data-ready=true]")
            page.get_by_role("switch", name="Show authors").click()
            page.wait_for_selector("[data-testid=editor] [data-author=alice]")
            page.get_by_role("button", name="History").click()
            view = page.locator("[data-history-view]")
            page.wait_for_selector(f"[data-history-view][data-seq='{head}']")
            slider = page.get_by_role("slider", name="Edit").element_handle()
            timings = []
            for seq in seqs:
                took = page.evaluate(ASK_JS, [slider, seq])
                assert took is not None, f"edit {seq} was not shown coloured within 10 s"
                timings.append(took)
                shown = view.locator(".ProseMirror").evaluate(EDITOR_TEXT_JS)
                url = f"/api/docs/{doc_id}/content?at={seq}&format=text"
                expected = page.request.get(url).json()["content"]
                assert re.sub(r"\s+", "", shown) == re.sub(r"\s+", "", expected), seq
            browser.close()
    finally:
        server.stop()
    print(
        f"slider stop -> view, {len(timings)} random edits of {int(head):,}: "
        f"p50 {statistics.median(timings):.0f} / p95 {_percentile(timings, 95):.0f} / "
        f"max {max(timings):.0f} ms (target 200)"
    )


if __name__ == "__main__":
    main()
