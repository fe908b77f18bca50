"""History benchmark: the document after a random event of a 137k-event log, and history pages.

    .venv/bin/python bench/history.py [--quick] [--samples 200]

The seph-blog1 trace (137,154 transactions, one update each, typed by a pycrdt client into a
paragraph's XmlText as in bench/background.py) is appended to a fresh SQLite log, checkpoints
are filled (`events.compaction.checkpoints_fill`, what the compaction task does), and then:
- content: `GET /api/docs/{id}/content?at=SEQ` for random seqs through Django's test client
  (HTML; the text variant too), p50/p95/max; checked against the trace's own text;
- history: the first page and a page deep in the log of `GET /api/docs/{id}/history`;
- the admin's history page (`/admin/collab/document/{id}/edits/`: timeline, rendered document,
  versions) at the head and at random seqs, p50/p95/max;
- attribution at the head and the authored diff from the middle of the log to the head, once
  each (both replay the log from its first event).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.background import TRACE  # noqa: E402


def _percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def _trace_with_texts(limit: int | None, samples: int) -> tuple[list[bytes], dict[int, str]]:
    """The trace as one update per transaction (as bench/background.py makes it), and the
    writer's own text right after the events at `samples` random seqs."""
    import gzip

    from pycrdt import Doc, XmlElement, XmlFragment, XmlText

    trace = json.loads(gzip.decompress(TRACE.read_bytes()))
    txns = trace["txns"][:limit]
    doc: Doc[Any] = Doc()
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    root = doc.get("default", type=XmlFragment)
    paragraph = root.children.append(XmlElement("paragraph"))
    text = paragraph.children.append(XmlText())
    rng = random.Random(1)
    wanted = {rng.randint(len(updates) + 1, len(updates) + len(txns)) for _ in range(samples)}
    texts: dict[int, str] = {}
    for txn in txns:
        with doc.transaction():
            for pos, delete, insert in txn["patches"]:
                if delete:
                    del text[pos : pos + delete]
                if insert:
                    text.insert(pos, insert)
        if len(updates) in wanted:
            # The writer's own view (pycrdt's indexing), not a re-derivation from the log.
            texts[len(updates)] = "".join(run for run, _ in text.diff())
    return updates, texts


def main() -> None:
    """Build the log, then time the reads; prints the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10,000 events, 50 samples")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--out", default=str(ROOT / "var" / "bench" / "history.json"))
    args = parser.parse_args()
    limit, samples = (10_000, 50) if args.quick else (None, args.samples)

    os.environ["PALIMPSEST_VAR_DIR"] = tempfile.mkdtemp(prefix="palimpsest-bench-")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "collab.settings")
    import django

    django.setup()
    from django.conf import settings

    # The page links static files by plain name: no `collectstatic` manifest needed here.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    from collab.services import document_create, token_issue
    from events.compaction import checkpoints_fill
    from events.integrity import chain_verify
    from events.services import NewEvent, event_append_batch

    call_command("migrate", verbosity=0)
    updates, texts = _trace_with_texts(limit, samples)
    owner = get_user_model().objects.create_user("bench")
    document = document_create(owner=owner, title="seph-blog1")
    for start in range(0, len(updates), 2000):
        event_append_batch(
            items=[
                NewEvent(document_id=document.id, update=u, actor_id=owner.pk)
                for u in updates[start : start + 2000]
            ]
        )
    head = len(updates)
    started = time.perf_counter()
    made = checkpoints_fill(document_id=document.id)
    fill_s = time.perf_counter() - started

    client = Client(SERVER_NAME="127.0.0.1")  # a host ALLOWED_HOSTS has by default
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token_issue(user=owner)}"}
    seqs = sorted(texts)
    random.Random(2).shuffle(seqs)
    timings: dict[str, list[float]] = {"html": [], "text": []}
    for fmt in ("html", "text"):
        for seq in seqs:
            t0 = time.perf_counter()
            response = client.get(f"/api/docs/{document.id}/content?at={seq}&format={fmt}", **auth)
            timings[fmt].append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 200, response.content
            if fmt == "text":
                assert response.json()["content"] == texts[seq], seq
    pages: dict[str, float] = {}
    for name, after in (("first", 0), ("deep", head - 150)):
        t0 = time.perf_counter()
        response = client.get(f"/api/docs/{document.id}/history?after={after}&limit=100", **auth)
        pages[name] = (time.perf_counter() - t0) * 1000
        assert response.status_code == 200 and len(response.json()["events"]) == 100

    admin = get_user_model().objects.create_superuser("bench-admin")
    browser = Client(SERVER_NAME="127.0.0.1")
    browser.force_login(admin)
    page_ms: list[float] = []
    for seq in [None, *seqs[:20]]:
        query = "" if seq is None else f"?seq={seq}"
        t0 = time.perf_counter()
        response = browser.get(f"/admin/collab/document/{document.id}/edits/{query}")
        page_ms.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200 and b'data-testid="timeline"' in response.content
    replays: dict[str, float] = {}
    for name, path in (("attribution", "attribution"), ("diff", f"diff?from={head // 2}")):
        t0 = time.perf_counter()
        response = client.get(f"/api/docs/{document.id}/{path}", **auth)
        replays[name] = time.perf_counter() - t0
        assert response.status_code == 200, response.content
    t0 = time.perf_counter()
    chain = chain_verify(document_id=document.id)
    verify_s = time.perf_counter() - t0
    assert chain.intact and chain.events == head, chain

    results: dict[str, Any] = {
        "events": head,
        "checkpoints": made,
        "checkpoint_fill_s": round(fill_s, 2),
        "samples": len(seqs),
        **{
            f"content_{fmt}_ms": {
                "p50": round(statistics.median(v), 1),
                "p95": round(_percentile(v, 95), 1),
                "max": round(max(v), 1),
            }
            for fmt, v in timings.items()
        },
        "history_page_ms": {k: round(v, 1) for k, v in pages.items()},
        "admin_page_ms": {
            "loads": len(page_ms),
            "p50": round(statistics.median(page_ms), 1),
            "p95": round(_percentile(page_ms, 95), 1),
            "max": round(max(page_ms), 1),
        },
        "replay_s": {k: round(v, 2) for k, v in replays.items()},
        "verify_log_s": round(verify_s, 2),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(
        f"log of {head:,} events; {made} checkpoints filled in {fill_s:.2f} s; "
        f"{len(seqs)} random seqs, each checked against the writer's text at that seq"
    )
    for fmt in ("html", "text"):
        c = results[f"content_{fmt}_ms"]
        print(
            f"content?at=SEQ&format={fmt}: p50 {c['p50']} ms, p95 {c['p95']} ms, "
            f"max {c['max']} ms (target p95 <= 200 ms)"
        )
    print(
        f"history page (100 events): first {pages['first']:.1f} ms, "
        f"deep in the log {pages['deep']:.1f} ms"
    )
    a = results["admin_page_ms"]
    print(
        f"admin history page ({a['loads']} loads, head and random seqs): p50 {a['p50']} ms, "
        f"p95 {a['p95']} ms, max {a['max']} ms"
    )
    print(
        f"attribution at the head {replays['attribution']:.2f} s; "
        f"diff from #{head // 2:,} to the head {replays['diff']:.2f} s"
    )
    print(f"hash chain of {head:,} events checked (verify_log's check) in {verify_s:.2f} s")


if __name__ == "__main__":
    main()
