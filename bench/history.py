"""History benchmark: the document after a random event of a 137k-event log, and history pages.

    .venv/bin/python bench/history.py [--quick] [--samples 200]

The seph-blog1 trace (137,154 transactions, one update each, typed by a pycrdt client into a
paragraph's XmlText as in bench/background.py) is appended to a fresh SQLite log, checkpoints
are filled (`events.history.checkpoints_fill`, what the compaction task does), and then:
- content: `GET /api/docs/{id}/content?at=SEQ` for random seqs through Django's test client
  (HTML; the text variant too), p50/p95/max; checked against the trace's own text;
- history: the first page and a page deep in the log of `GET /api/docs/{id}/history`.
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

from bench.background import TRACE, trace_updates  # noqa: E402


def _percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def _trace_texts(limit: int | None) -> list[str]:
    """The trace's text after each transaction (index 0: empty)."""
    import gzip

    trace = json.loads(gzip.decompress(TRACE.read_bytes()))
    text, texts = "", [""]
    for txn in trace["txns"][:limit]:
        for pos, delete, insert in txn["patches"]:
            text = text[:pos] + insert + text[pos + delete :]
        texts.append(text)
    return texts


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
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    from collab.services import document_create, token_issue
    from events.history import checkpoints_fill
    from events.services import NewEvent, event_append_batch

    call_command("migrate", verbosity=0)
    updates = trace_updates(limit)
    texts = _trace_texts(limit)
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
    setup = head - (len(texts) - 1)  # events before the trace's first transaction
    started = time.perf_counter()
    made = checkpoints_fill(document_id=document.id)
    fill_s = time.perf_counter() - started

    client = Client(SERVER_NAME="127.0.0.1")  # a host ALLOWED_HOSTS has by default
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token_issue(user=owner)}"}
    rng = random.Random(1)
    seqs = [rng.randint(1, head) for _ in range(samples)]
    timings: dict[str, list[float]] = {"html": [], "text": []}
    for fmt in ("html", "text"):
        for seq in seqs:
            t0 = time.perf_counter()
            response = client.get(f"/api/docs/{document.id}/content?at={seq}&format={fmt}", **auth)
            timings[fmt].append((time.perf_counter() - t0) * 1000)
            assert response.status_code == 200, response.content
            if fmt == "text":
                # The first events create the paragraph; then one event per transaction.
                assert response.json()["content"] == texts[max(0, seq - setup)], seq
    pages: dict[str, float] = {}
    for name, after in (("first", 0), ("deep", head - 150)):
        t0 = time.perf_counter()
        response = client.get(f"/api/docs/{document.id}/history?after={after}&limit=100", **auth)
        pages[name] = (time.perf_counter() - t0) * 1000
        assert response.status_code == 200 and len(response.json()["events"]) == 100

    results: dict[str, Any] = {
        "events": head,
        "checkpoints": made,
        "checkpoint_fill_s": round(fill_s, 2),
        "samples": samples,
        **{
            f"content_{fmt}_ms": {
                "p50": round(statistics.median(v), 1),
                "p95": round(_percentile(v, 95), 1),
                "max": round(max(v), 1),
            }
            for fmt, v in timings.items()
        },
        "history_page_ms": {k: round(v, 1) for k, v in pages.items()},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(
        f"log of {head:,} events; {made} checkpoints filled in {fill_s:.2f} s; "
        f"{samples} random seqs, each checked against the trace's text"
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


if __name__ == "__main__":
    main()
