"""History at scale: bytes per edit after compaction, and reads of the past at random seqs.

    .venv/bin/python bench/storage.py [--only sqlite:seph] [--samples 20]

Cases: {sqlite, postgres} x {seph: the seph-blog1 trace, 137,154 edits; long: a 260,000-edit
log of the same shape, the trace typed once and then again after its own text}. Each runs in
a child process on a fresh database (SQLite in a temp folder; a new database on the local
PostgreSQL, dropped after). The updates are appended as the server appends them
(`event_append_batch`, 1,000 per batch, one actor); a snapshot is asked for every 1,000 events
as rooms do; then `document_compact`, what the compaction task runs, with no packing grace.

Prints, per case:
- bytes per edit, split by table and index (SQLite: `dbstat` pages; PostgreSQL:
  `pg_total_relation_size` after VACUUM FULL, which returns the deleted rows' pages);
- compaction and packing time;
- content, attribution, the authored diff of the edit at the seq (from the seq before) and
  the diff from the seq to the head, at `--samples` random seqs: p50 / p95 / max ms, each
  checked against the writer's own text at that seq;
- `verify_log`'s check, intact, and its time.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.background import TRACE  # noqa: E402

PG_URL = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
LONG_EDITS = 260_000
CASES = ("sqlite:seph", "postgres:seph", "sqlite:long", "postgres:long")


def _percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def _updates(edits: int | None, wanted: set[int]) -> tuple[list[bytes], dict[int, str]]:
    """One update per transaction, the trace typed (again after its own text if `edits` asks
    for more), and the writer's own text after the events at the seqs in `wanted`."""
    from pycrdt import Doc, XmlElement, XmlFragment, XmlText

    txns = json.loads(gzip.decompress(TRACE.read_bytes()))["txns"]
    doc: Doc[Any] = Doc()
    updates: list[bytes] = []
    doc.observe(lambda event: updates.append(event.update))
    root = doc.get("default", type=XmlFragment)
    paragraph = root.children.append(XmlElement("paragraph"))
    text = paragraph.children.append(XmlText())
    texts: dict[int, str] = {}
    total = edits or len(txns) + 1
    offset = 0
    while len(updates) < total:
        for txn in txns:
            if len(updates) >= total:
                break
            with doc.transaction():
                for pos, delete, insert in txn["patches"]:
                    if delete:
                        del text[offset + pos : offset + pos + delete]
                    if insert:
                        text.insert(offset + pos, insert)
            if len(updates) in wanted:
                texts[len(updates)] = "".join(run for run, _ in text.diff())
        offset = len(str(text))
    return updates, texts


def _sizes_sqlite() -> dict[str, int]:
    """Bytes of each table and index of the log (dbstat pages), and the free list."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name")
        sizes = {name: int(size) for name, size in cursor.fetchall()}
        cursor.execute("PRAGMA freelist_count")
        free = cursor.fetchone()[0]
        cursor.execute("PRAGMA page_size")
        page = cursor.fetchone()[0]
    out = {k: v for k, v in sizes.items() if k.startswith("events_") or "events_" in k}
    # SQLite names the indexes of unique constraints sqlite_autoindex_<table>_N.
    out.update({k: v for k, v in sizes.items() if k.startswith("sqlite_autoindex_events")})
    out["(free pages, reused by later writes)"] = free * page
    return out


def _sizes_postgres() -> dict[str, int]:
    """pg_total_relation_size of each log table after VACUUM FULL, and its indexes apart."""
    from django.db import connection

    tables = ("events_event", "events_eventsegment", "events_snapshot", "events_authorcheckpoint")
    out: dict[str, int] = {}
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f"VACUUM FULL {table}")
            cursor.execute("SELECT pg_total_relation_size(%s), pg_indexes_size(%s)", [table, table])
            total, indexes = cursor.fetchone()
            out[table] = int(total) - int(indexes)
            out[f"{table} (indexes)"] = int(indexes)
    return out


def _timed(fn: Any) -> tuple[Any, float]:
    """fn()'s result and its time in ms."""
    started = time.perf_counter()
    result = fn()
    return result, (time.perf_counter() - started) * 1000


def _stats(values: list[float]) -> dict[str, float]:
    """p50 / p95 / max, rounded."""
    return {
        "p50": round(statistics.median(values), 1),
        "p95": round(_percentile(values, 95), 1),
        "max": round(max(values), 1),
    }


def run_case(case: str, samples: int) -> dict[str, Any]:
    """Build, compact and read one case's log; its figures."""
    backend, shape = case.split(":")
    os.environ["PALIMPSEST_VAR_DIR"] = tempfile.mkdtemp(prefix="palimpsest-bench-")
    database = None
    if backend == "postgres":
        import psycopg

        database = f"bench_storage_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(PG_URL.replace("postgres://", "postgresql://"), autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{database}"')
        os.environ["DATABASE_URL"] = PG_URL.rsplit("/", 1)[0] + f"/{database}"
    else:
        os.environ.pop("DATABASE_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "collab.settings")
    import django

    django.setup()
    try:
        return _run(backend, shape, samples)
    finally:
        if database is not None:
            from django.db import connections

            connections.close_all()
            import psycopg

            with psycopg.connect(
                PG_URL.replace("postgres://", "postgresql://"), autocommit=True
            ) as c:
                c.execute(f'DROP DATABASE "{database}" WITH (FORCE)')


def _run(backend: str, shape: str, samples: int) -> dict[str, Any]:
    """`run_case` once Django is set up."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from collab.services import document_create
    from events import history
    from events.compaction import (
        author_checkpoints_fill,
        checkpoints_fill,
        log_pack,
        snapshot_compact,
    )
    from events.integrity import chain_verify
    from events.replays import full_replays
    from events.services import NewEvent, event_append_batch

    call_command("migrate", verbosity=0)
    edits = LONG_EDITS if shape == "long" else None
    rng = random.Random(7)
    total = edits or 137_155
    seqs = sorted(rng.sample(range(1, total + 1), samples))
    updates, texts = _updates(edits, set(seqs))
    head = len(updates)
    owner = get_user_model().objects.create_user("bench")
    document = document_create(owner=owner, title=f"{shape} log")
    started = time.perf_counter()
    for start in range(0, head, 1000):
        batch = updates[start : start + 1000]
        event_append_batch(
            items=[NewEvent(document_id=document.id, update=u, actor_id=owner.pk) for u in batch]
        )
        snapshot_compact(document_id=document.id)  # rooms ask every 1,000 events
    append_s = time.perf_counter() - started
    timings: dict[str, float] = {}
    _, timings["checkpoints_ms"] = _timed(lambda: checkpoints_fill(document_id=document.id))
    _, timings["head_snapshot_ms"] = _timed(lambda: snapshot_compact(document_id=document.id))
    made, timings["author_checkpoints_ms"] = _timed(
        lambda: author_checkpoints_fill(document_id=document.id, upto=head)
    )
    packed, timings["packing_ms"] = _timed(
        lambda: log_pack(document_id=document.id, grace_s=-1)  # -1: this very run's segments
    )
    sizes = _sizes_sqlite() if backend == "sqlite" else _sizes_postgres()
    counted = {k: v for k, v in sizes.items() if not k.startswith("(")}
    per_edit = sum(counted.values()) / head

    reads: dict[str, list[float]] = {
        "content": [],
        "attribution": [],
        "diff of the edit": [],
        "diff to the head": [],
    }
    for seq in seqs:
        full_replays._results.clear()  # each read computed, not taken from the kept results
        content, ms = _timed(
            lambda s=seq: history.document_content(document_id=document.id, at_seq=s)
        )
        assert content.text == texts[seq], f"content at {seq} differs from the writer's text"
        reads["content"].append(ms)
        authored, ms = _timed(
            lambda s=seq: history.document_attribution(document_id=document.id, at_seq=s)
        )
        assert authored.text == texts[seq], f"attribution at {seq} differs from the text"
        reads["attribution"].append(ms)
        edit, ms = _timed(
            lambda s=seq: history.document_diff(document_id=document.id, from_seq=s - 1, to_seq=s)
        )
        assert "".join(c.text for c in edit if c.op != "delete") == texts[seq], seq
        assert {c.seq for c in edit if c.op != "equal"} <= {seq}, f"the edit at {seq} is dated"
        reads["diff of the edit"].append(ms)
        diff, ms = _timed(
            lambda s=seq: history.document_diff(document_id=document.id, from_seq=s, to_seq=head)
        )
        assert "".join(c.text for c in diff if c.op != "insert") == texts[seq], seq
        reads["diff to the head"].append(ms)
    chain, verify_ms = _timed(lambda: chain_verify(document_id=document.id))
    assert chain.intact and chain.events == head, chain
    return {
        "case": f"{backend}:{shape}",
        "edits": head,
        "append_s": round(append_s, 1),
        "bytes_per_edit": round(per_edit, 1),
        "bytes": sizes,
        "author_checkpoints": made,
        "segments": packed.segments,
        "rows_deleted": packed.rows_deleted,
        "compaction_ms": {k: round(v) for k, v in timings.items()},
        "reads_ms": {k: _stats(v) for k, v in reads.items()},
        "verify_ms": round(verify_ms),
    }


def main() -> None:
    """Run each case in a child process and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", action="append", choices=CASES)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_case(args.child, args.samples)))
        return
    results = []
    for case in args.only or CASES:
        child = subprocess.run(
            [sys.executable, __file__, "--child", case, "--samples", str(args.samples)],
            capture_output=True,
            text=True,
            check=False,
        )
        if child.returncode != 0:
            print(f"{case}: failed\n{child.stderr[-3000:]}")
            continue
        result = json.loads(child.stdout.strip().splitlines()[-1])
        results.append(result)
        print(f"\n== {case}: {result['edits']:,} edits, appended in {result['append_s']} s")
        print(f"bytes per edit: {result['bytes_per_edit']} (target <= 128)")
        for name, size in sorted(result["bytes"].items(), key=lambda kv: -kv[1]):
            print(f"  {name:45} {size:>12,} B  {size / result['edits']:7.1f} B/edit")
        print(f"compaction: {result['compaction_ms']} ms; {result['segments']} segments")
        for name, s in result["reads_ms"].items():
            target = 100 if name == "content" else 200
            print(
                f"{name:12} p50 {s['p50']} / p95 {s['p95']} / max {s['max']} ms "
                f"(target p95 <= {target})"
            )
        print(f"verify_log: intact, {result['verify_ms']} ms")
    out = ROOT / "var" / "bench" / "storage.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
