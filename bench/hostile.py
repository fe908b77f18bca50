"""Hostile clients against a real server with its default bounds: what each costs everyone else.

Starts `python -m collab.server` (embedded default, SQLite) in a temporary folder and, one
after another:

- a quiet baseline: another document's edit latency (writer to reader, raw sockets);
- an asker: a viewer sends 3,000 SyncStep1s with an empty state vector on a 700k-character
  document, keeps asking ten times a second and reads 4 KiB a tenth of a second;
- a flooder: 200 updates of 100 KB (20 MB) sent without pause, never reading;
- the largest update accepted: one insert just under PALIMPSEST_MAX_FRAME_BYTES, and how long
  it takes from the writer's send until another client has it.

For each: the server's RSS before, at its peak and after, and the other document's p50/p99.
`.venv/bin/python bench/hostile.py` (about a minute). Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pycrdt import create_update_message  # noqa: E402

from tests.interop.live import LiveServer  # noqa: E402
from tests.interop.raw import (  # noqa: E402
    LatencyProbe,
    RawClient,
    ask_and_never_read,
    paragraph_doc,
    rss_mb,
    write_document,
    ws_url,
)

LIMIT = 16 * 1024 * 1024


def _row(
    name: str, before: float, peak: float, after: float, probe: LatencyProbe, note: str
) -> str:
    samples = sorted(probe.samples)
    p50 = samples[len(samples) // 2] * 1000
    return (
        f"| {name} | {before:.0f} | {peak:.0f} | {after:.0f} | {p50:.1f} | "
        f"{probe.p99_ms():.1f} | {note} |"
    )


def main() -> None:
    """Run each scenario and print a Markdown table."""
    with tempfile.TemporaryDirectory() as tmp:
        server = LiveServer(Path(tmp)).start()
        assert server.process is not None
        pid = server.process.pid
        rows = []
        try:
            owner = server.token("owner")
            viewer = server.token("vic")

            before = rss_mb(pid)
            with LatencyProbe(server, owner) as probe:
                time.sleep(5)
            rows.append(_row("quiet", before, rss_mb(pid), rss_mb(pid), probe, ""))

            doc_id = server.document(owner, vic="viewer")
            write_document(server, doc_id, owner, 700_000)
            before = rss_mb(pid)
            with LatencyProbe(server, owner) as probe:
                closed_after, peak = ask_and_never_read(ws_url(server, doc_id, viewer), pid, 90)
            time.sleep(1)
            note = f"closed after {closed_after:.1f} s" if closed_after else "not closed in 90 s"
            rows.append(_row("asker", before, peak, rss_mb(pid), probe, note))

            doc_id = server.document(owner)
            flooder = RawClient(ws_url(server, doc_id, owner), receive_buffer=4096)
            _, text, updates = paragraph_doc()
            for i in range(200):
                text.insert((i * 7) % 1000, "abcdefghij" * 10_000)
            wire = b"".join(flooder.encode(create_update_message(u)) for u in updates)
            before = peak = rss_mb(pid)
            with LatencyProbe(server, owner) as probe:
                started = time.monotonic()
                flooder.sock.settimeout(120)
                flooder.send_raw(wire)
                sent = time.monotonic() - started
                while time.monotonic() - started < 5:
                    peak = max(peak, rss_mb(pid))
                    time.sleep(0.2)
            flooder.close()
            rows.append(
                _row("flooder", before, peak, rss_mb(pid), probe, f"20 MB taken in {sent:.1f} s")
            )

            doc_id = server.document(owner)
            writer = RawClient(ws_url(server, doc_id, owner))
            reader = RawClient(ws_url(server, doc_id, owner))
            for client in (writer, reader):
                client.read_frames(1, 10)
            _, text, updates = paragraph_doc()
            for update in updates:
                writer.send(create_update_message(update))
            reader.read_frames(1 + len(updates), 10)
            updates.clear()
            text.insert(0, "y" * (LIMIT - 64))
            frame = create_update_message(updates[0])
            before = peak = rss_mb(pid)
            seen = len(reader.received.frames)
            started = time.monotonic()
            writer.send(frame)
            reader.read_frames(seen + 1, 60)
            latency = time.monotonic() - started
            arrived = len(reader.received.frames) > seen and not writer.received.close_code
            print(
                f"largest update: {len(frame):,} bytes "
                f"({'reached the other client' if arrived else 'NOT delivered'}) in "
                f"{latency * 1000:.0f} ms"
            )
        finally:
            server.stop()
    print("\n| attack | RSS before (MB) | peak | after | other doc p50 (ms) | p99 (ms) | note |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
