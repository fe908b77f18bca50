"""Background work benchmark: compaction of a long log, and a 40-page PDF export end to end.

    .venv/bin/python bench/background.py [--quick] [--pages 40] [--runs 3] [--stack]

Compaction: the seph-blog1 trace (137,154 transactions) as one update per transaction, made
by a pycrdt client in the TipTap shape (a paragraph's XmlText), appended to a fresh SQLite
log; then `snapshot_compact` over the whole log, and over 1,000-event increments after it.
Export: a live server (`python -m collab.server`, the embedded worker; with --stack also
`python -m collab.stack` on Redis + PostgreSQL), a document of --pages pages published over
the WebSocket, then the time from `POST /api/docs/{id}/exports` to `export.done` on
/ws/notifications, and the PDF's page count.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TRACE = ROOT / "tests" / "data" / "traces" / "seph-blog1.json.gz"


def trace_updates(limit: int | None) -> list[bytes]:
    """One update per trace transaction, typed into a paragraph by a pycrdt client."""
    from pycrdt import Doc, XmlElement, XmlFragment, XmlText

    trace = json.loads(gzip.decompress(TRACE.read_bytes()))
    doc: Doc[Any] = Doc()
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    root = doc.get("default", type=XmlFragment)
    paragraph = root.children.append(XmlElement("paragraph"))
    text = paragraph.children.append(XmlText())
    for txn in trace["txns"][:limit]:
        with doc.transaction():
            for pos, delete, insert in txn["patches"]:
                if delete:
                    del text[pos : pos + delete]
                if insert:
                    text.insert(pos, insert)
    return updates


def bench_compaction(limit: int | None, increments: int) -> dict[str, Any]:
    """Time a full compaction and then 1,000-event increments on a fresh SQLite log."""
    os.environ["PALIMPSEST_VAR_DIR"] = tempfile.mkdtemp(prefix="palimpsest-bench-")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "collab.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from collab.services import document_create
    from events.compaction import snapshot_compact
    from events.models import Snapshot
    from events.services import NewEvent, event_append_batch

    call_command("migrate", verbosity=0)
    updates = trace_updates(limit)
    owner = get_user_model().objects.create_user("bench")
    document = document_create(owner=owner, title="seph-blog1")
    for start in range(0, len(updates), 2000):
        event_append_batch(
            items=[
                NewEvent(document_id=document.id, update=u, actor_id=owner.pk)
                for u in updates[start : start + 2000]
            ]
        )
    total = len(updates)
    results: dict[str, Any] = {"events": total}
    started = time.perf_counter()
    full = snapshot_compact(document_id=document.id)
    results["full_s"] = round(time.perf_counter() - started, 3)
    assert full is not None and full.upto_seq == total
    results["full_events"] = full.events_folded
    results["state_bytes"] = full.state_bytes
    results["pending"] = full.pending
    # Increments: start again from a snapshot `increments` thousand events before the head
    # (this benchmark's own database: snapshots are only a cache).
    Snapshot.objects.filter(document_id=document.id).delete()
    first_upto = total - increments * 1000
    assert snapshot_compact(document_id=document.id, upto_seq=first_upto) is not None
    steps = []
    for i in range(1, increments + 1):
        started = time.perf_counter()
        step = snapshot_compact(document_id=document.id, upto_seq=first_upto + i * 1000)
        steps.append((time.perf_counter() - started) * 1000)
        assert step is not None and step.events_folded == 1000
    if steps:
        results["increment_ms_median"] = round(statistics.median(steps), 1)
        results["increment_ms_max"] = round(max(steps), 1)
    # For scale, the approach compaction avoids: pycrdt.merge_updates over a raw log (only
    # the first 20,000 events: it is super-linear).
    from pycrdt import merge_updates

    from collab.sync.compaction import fold

    first = updates[:20_000]
    results["first_events"] = len(first)
    started = time.perf_counter()
    fold(state=None, pending=[], tail=first)
    results["fold_first_s"] = round(time.perf_counter() - started, 3)
    started = time.perf_counter()
    merge_updates(*first)
    results["merge_updates_first_s"] = round(time.perf_counter() - started, 3)
    # Asking again with nothing new costs two index lookups.
    started = time.perf_counter()
    again = snapshot_compact(document_id=uuid.UUID(str(document.id)))
    results["noop_ms"] = round((time.perf_counter() - started) * 1000, 1)
    assert again is None
    return results


def bench_export(pages: int, runs: int, stack: bool) -> dict[str, Any]:
    """Request-to-export.done for a long document, on the embedded server (and the stack)."""
    from websockets.sync.client import connect

    from tests.interop.live import LiveServer, LiveStack
    from tests.interop.test_stack import _download, _publish
    from tests.richdoc import long_document

    out: dict[str, Any] = {}
    setups: list[tuple[str, Any]] = [("embedded", None)]
    if stack:
        setups.append(("stack", "stack"))
    for name, kind in setups:
        var_dir = Path(tempfile.mkdtemp(prefix=f"palimpsest-export-{name}-"))
        if kind == "stack":
            import psycopg
            import redis

            db = f"palimpsest_bench_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(
                "postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True
            ) as c:
                c.execute(f'CREATE DATABASE "{db}"')
            redis.Redis.from_url("redis://127.0.0.1:6379/2").flushdb()
            server: Any = LiveStack(
                var_dir,
                {
                    "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{db}",
                    "REDIS_URL": "redis://127.0.0.1:6379/2",
                },
                concurrency=2,
            ).start()
        else:
            server = LiveServer(var_dir).start()
        try:
            token = server.token("bench")
            doc_id = server.document(token)
            _publish(server, doc_id, token, long_document(pages))
            times, page_counts = [], []
            for _ in range(runs):
                url = f"ws://127.0.0.1:{server.port}/ws/notifications?token={token}"
                with connect(url) as notes:
                    notes.recv(timeout=10)
                    started = time.perf_counter()
                    export = server.api("POST", f"/docs/{doc_id}/exports", token, {})
                    while True:
                        event = json.loads(notes.recv(timeout=120))
                        if event["type"] in ("export.done", "export.failed"):
                            break
                    elapsed = time.perf_counter() - started
                assert event["type"] == "export.done", event
                assert event["export"]["id"] == export["id"]
                times.append(elapsed)
                from pypdf import PdfReader

                pdf = _download(server, token, event["export"]["download_url"])
                page_counts.append(len(PdfReader(io.BytesIO(pdf)).pages))
            out[name] = {
                "request_to_done_s": [round(t, 2) for t in times],
                "median_s": round(statistics.median(times), 2),
                "pages": page_counts[0],
            }
        finally:
            server.stop()
    return out


def main() -> None:
    """Run both benchmarks and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="5,000 events, 5 pages, one run")
    parser.add_argument("--pages", type=int, default=42, help="sections of about a page each")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--stack", action="store_true", help="also export through make stack")
    parser.add_argument("--out", default=str(ROOT / "var" / "bench" / "background.json"))
    args = parser.parse_args()
    limit, increments = (5000, 2) if args.quick else (None, 20)
    pages, runs = (5, 1) if args.quick else (args.pages, args.runs)
    results = {
        "compaction": bench_compaction(limit, increments),
        "export": bench_export(pages, runs, args.stack),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    c = results["compaction"]
    print(
        f"compaction of {c['full_events']:,} events: {c['full_s']:.3f} s (target <= 1 s); "
        f"state {c['state_bytes']:,} bytes, {c['pending']} pending"
    )
    if "increment_ms_median" in c:
        print(
            f"1,000-event increments: median {c['increment_ms_median']} ms, "
            f"max {c['increment_ms_max']} ms (target <= 20 ms); no-op {c['noop_ms']} ms"
        )
    if "merge_updates_first_s" in c:
        print(
            f"first {c['first_events']:,} events: fold {c['fold_first_s']} s, "
            f"pycrdt.merge_updates {c['merge_updates_first_s']} s"
        )
    for name, e in results["export"].items():
        print(
            f"export {e['pages']} pages ({name}): request to export.done median {e['median_s']} s "
            f"{e['request_to_done_s']} (target <= 5 s)"
        )


if __name__ == "__main__":
    main()
