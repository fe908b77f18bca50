"""A misbehaving client never hurts anyone else, against a real daphne server.

Raw sockets (tests/interop/raw.py) that never read, never answer a close, flood, or send
messages over the limit or damaged updates, beside stock y-websocket clients doing their work.
Each test prints the figures the README reports (RSS growth, another document's latency).
"""

from __future__ import annotations

import base64
import json
import random
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Doc, Map, create_sync_message, create_update_message, write_var_uint

from collab.sync.protocol import parse_frame
from tests.interop.live import LiveServer, NodeClient, converged
from tests.interop.raw import (
    EMPTY_STEP1,
    LatencyProbe,
    RawClient,
    ask_and_never_read,
    paragraph_doc,
    rss_mb,
    write_document,
    ws_url,
)
from tests.waiting import eventually_sync
from tests.ytest import mutate, same_document

# Small bounds, so each attack crosses them within seconds.
LIMITS = {
    "PALIMPSEST_SEND_BUFFER_BYTES": str(1024 * 1024),
    "PALIMPSEST_SLOW_READER_SECONDS": "2",
    "PALIMPSEST_RECEIVE_BUFFER_BYTES": str(256 * 1024),
    "PALIMPSEST_CONNECTIONS_PER_USER": "64",
    "PALIMPSEST_APPEND_QUEUE_BYTES": str(1024 * 1024),
    "PALIMPSEST_METRICS_TOKEN": "scrape-me",
}
LIMIT = 16 * 1024 * 1024  # PALIMPSEST_MAX_FRAME_BYTES's default


@pytest.fixture
def server(tmp_path: Path, node_available: None) -> Iterator[LiveServer]:
    """A daphne server on the embedded default with small per-connection bounds."""
    live = LiveServer(tmp_path, LIMITS).start()
    yield live
    live.stop()


def _no_tracebacks(server: LiveServer) -> None:
    log = server.log.read_text(errors="replace")
    assert "Traceback" not in log, log[-4000:]
    assert "Disconnected" not in log, log[-4000:]


def test_sockets_that_never_answer_a_close_do_not_wedge_the_room(
    server: LiveServer, node_client: Callable[..., NodeClient]
) -> None:
    tokens = [server.token(name) for name in ("w0", "w1", "w2")]
    doc_id = server.document(tokens[0], w1="editor", w2="editor")
    writers = [node_client(server.ws_url, doc_id, token) for token in tokens]
    for writer in writers:
        assert writer.call("wait_synced")["ok"]
    silent: list[RawClient] = []
    with ThreadPoolExecutor(len(writers)) as pool:
        edits = [
            pool.submit(writer.call, "random_edits", count=200, seed=i, delay_ms=10)
            for i, writer in enumerate(writers)
        ]
        for i in range(24):
            # Each sends a bad frame, is closed with 4400, and never reads or answers the close.
            client = RawClient(ws_url(server, doc_id, tokens[i % 3]), receive_buffer=4096)
            client.send(b"\xff\xff\xff")
            silent.append(client)
            time.sleep(0.05)
        assert all(edit.result()["ok"] for edit in edits)
    text = converged(writers)
    fresh = node_client(server.ws_url, doc_id, tokens[0])
    assert fresh.call("wait_text", equals=text)["ok"], "a newcomer syncs after the attack"
    assert server.event_count(doc_id) >= 500, "the writers' edits were logged"
    for client in silent:
        closed = client.read_until_closed(5)
        assert closed.close_code == 4400 or closed.eof
        client.close()
    _no_tracebacks(server)


def test_a_reader_that_asks_and_never_reads_is_closed_and_its_memory_freed(
    server: LiveServer,
) -> None:
    owner = server.token("owner")
    viewer = server.token("vic")
    doc_id = server.document(owner, vic="viewer")
    write_document(server, doc_id, owner, 700_000)
    assert server.process is not None
    pid = server.process.pid
    before = rss_mb(pid)
    with LatencyProbe(server, owner) as probe:
        closed_after, peak = ask_and_never_read(ws_url(server, doc_id, viewer), pid, 40)
    # Freed once it is closed (the allocator returns what it can within a moment).
    eventually_sync(lambda: rss_mb(pid) - before < 60, 10, "memory freed after the close")
    after = rss_mb(pid)
    print(
        f"asker: RSS {before:.0f} -> peak {peak:.0f} -> {after:.0f} MB, closed after "
        f"{closed_after} s; other document p99 {probe.p99_ms():.1f} ms "
        f"({len(probe.samples)} edits, {probe.lost} lost)"
    )
    assert closed_after is not None, "a socket that never reads is closed"
    assert peak - before < 150, "what waits for a reader that never reads is bounded"
    assert probe.lost == 0
    _no_tracebacks(server)


def _flood(server: LiveServer, doc_id: str, token: str) -> tuple[RawClient, bytes, str, int]:
    """A flooder socket and what it will send: 200 updates of 100 KB (20 MB), never reading."""
    flooder = RawClient(ws_url(server, doc_id, token), receive_buffer=4096)
    _, text, updates = paragraph_doc()
    chunk = "abcdefghij" * 10_000
    for i in range(200):
        text.insert((i * 7) % 1000, chunk)
    wire = b"".join(flooder.encode(create_update_message(u)) for u in updates)
    return flooder, wire, str(text), len(updates)


def _send_in_background(client: RawClient, data: bytes) -> threading.Event:
    """Send `data` on a thread; the event is set once the kernel took all of it."""
    done = threading.Event()

    def send() -> None:
        client.sock.settimeout(120)
        client.send_raw(data)
        done.set()

    threading.Thread(target=send, daemon=True).start()
    return done


def _wait_logged(server: LiveServer, doc_id: str, token: str, seq: int) -> tuple[int, str]:
    """Wait (up to a minute) until the log reaches `seq`; the seq and text then."""
    deadline = time.monotonic() + 60
    while True:
        head, content = server.content_text(doc_id, token)
        if head >= seq or time.monotonic() > deadline:
            return head, content
        time.sleep(0.5)


def test_unpaced_large_answers_to_a_reader_that_never_reads_are_cut_off(
    server: LiveServer,
) -> None:
    """A state vector that lacks one large item (one clock: not "far behind", so not paced)
    asked for in a loop: the queue's hard cap closes the socket, and reading it stops."""
    owner = server.token("owner")
    viewer = server.token("vic")
    doc_id = server.document(owner, vic="viewer")
    writer = RawClient(ws_url(server, doc_id, owner))
    writer.read_frames(1, 10)
    doc: Doc[Any] = Doc()
    before = doc.get_state()
    doc.get("blob", type=Map)["big"] = "z" * 2_000_000  # one item, one clock, 2 MB
    writer.send(create_update_message(doc.get_update()))
    writer.send(EMPTY_STEP1)
    writer.read_frames(3, 10)
    writer.close()
    assert server.process is not None
    rss_before = rss_mb(server.process.pid)
    asker = RawClient(ws_url(server, doc_id, viewer), receive_buffer=4096)
    step1 = create_sync_message(Doc())[:2] + write_var_uint(len(before)) + before
    started = time.monotonic()
    for _ in range(200):
        asker.send(step1)
    received = asker.read_until(lambda r: False, timeout=15)  # reads, but only after the flood
    closed_after = time.monotonic() - started
    peak = rss_mb(server.process.pid)
    print(f"one-clock asker: closed after {closed_after:.1f} s, RSS {rss_before:.0f} -> {peak:.0f}")
    assert received.close_code == 4508 or received.eof
    assert len(received.frames) < 20, "most of the 200 answers were never built or were freed"
    assert peak - rss_before < 100
    _no_tracebacks(server)


def test_a_socket_that_floods_without_reading_is_pushed_back(server: LiveServer) -> None:
    owner = server.token("owner")
    assert server.process is not None
    pid = server.process.pid
    # While the log keeps up: the flood goes in, and another document hardly notices.
    doc_id = server.document(owner)
    before = rss_mb(pid)
    peak = before
    flooder, wire, expected, count = _flood(server, doc_id, owner)
    with LatencyProbe(server, owner) as probe:
        started = time.monotonic()
        done = _send_in_background(flooder, wire)
        while time.monotonic() - started < 120:  # at least 3 s of probing
            peak = max(peak, rss_mb(pid))
            if done.wait(0.2) and time.monotonic() - started > 3:
                break
    assert done.is_set(), "the flood was taken within two minutes"
    seq, content = _wait_logged(server, doc_id, owner, count)
    print(
        f"flooder: {count} updates ({len(wire) / 1e6:.1f} MB); RSS {before:.0f} -> peak "
        f"{peak:.0f} MB; other document p99 {probe.p99_ms():.1f} ms"
    )
    assert seq == count and content == expected, "every update of the flood is logged"
    assert peak - before < 200
    assert probe.lost == 0
    flooder.close()
    # While the log cannot keep up (its write lock held elsewhere): the server stops reading
    # the flooder, so TCP holds the flood back instead of the server's memory.
    doc_id = server.document(owner)
    before = rss_mb(pid)
    peak = before
    flooder, wire, expected, count = _flood(server, doc_id, owner)
    blocker = sqlite3.connect(server.var_dir / "palimpsest.sqlite3", timeout=10)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        done = _send_in_background(flooder, wire)
        held = time.monotonic() + 4
        while time.monotonic() < held:
            peak = max(peak, rss_mb(pid))
            time.sleep(0.2)
        assert not done.is_set(), "the flooder was pushed back while the log stalled"
    finally:
        blocker.rollback()
        blocker.close()
    assert done.wait(60)
    seq, content = _wait_logged(server, doc_id, owner, count)
    print(f"flooder while the log stalls: RSS {before:.0f} -> peak {peak:.0f} MB")
    assert seq == count and content == expected, "nothing was lost meanwhile"
    assert peak - before < 100
    assert "pausing reads from" in server.log.read_text()
    flooder.close()
    _no_tracebacks(server)


def test_a_5_mb_paste_from_a_stock_client_reaches_the_other(
    server: LiveServer, node_client: Callable[..., NodeClient]
) -> None:
    token = server.token("paster")
    doc_id = server.document(token)
    writer = node_client(server.ws_url, doc_id, token, "--shape", "paragraph")
    reader = node_client(server.ws_url, doc_id, token, "--shape", "paragraph")
    for client in (writer, reader):
        assert client.call("wait_synced")["ok"]
    assert writer.call("make_paragraph")["ok"]
    assert reader.call("wait_paragraph")["ok"]
    paste = "".join(random.Random(5).choices("abcdefghij klmnop", k=5_000_000))
    started = time.monotonic()
    assert writer.call("insert", pos=0, text=paste)["ok"]
    reached = reader.call("wait_text", equals=paste, timeout=60_000)["ok"]
    latency = time.monotonic() - started
    assert reached, "the paste reached the other client"
    print(f"5,000,000-character paste: reached the other client in {latency:.2f} s")
    _, content = server.content_text(doc_id, token)
    assert content == paste, f"the log holds {len(content)} characters"
    assert not [e for e in writer.events if e.get("event") == "closed"]


def test_a_message_over_the_limit_is_refused_with_4413_and_not_resent(
    server: LiveServer, node_client: Callable[..., NodeClient]
) -> None:
    token = server.token("paster")
    doc_id = server.document(token)
    # Raw: only the header and a little of a message over the limit; the close comes at once,
    # as a close frame with the limit in its reason, not a dropped connection.
    raw = RawClient(ws_url(server, doc_id, token))
    wire = raw.encode(b"\x00\x02" + b"\x00" * (LIMIT + 10))
    raw.send_raw(wire[:65536])
    closed = raw.read_until_closed(10)
    assert closed.close_code == 4413, closed
    assert str(LIMIT) in closed.close_reason
    raw.close()
    # A stock client pasting over the limit is told once and does not retry (44xx is final).
    writer = node_client(server.ws_url, doc_id, token)
    assert writer.call("wait_synced")["ok"]
    assert writer.call("insert", pos=0, text="y" * (LIMIT + 1000))["ok"]
    # The provider gives up in the same turn as a final close; a reconnect would come first.
    eventually_sync(lambda: any(e.get("event") == "gave_up" for e in writer.events), 20)
    closes = [e for e in writer.events if e.get("event") == "closed"]
    assert [e["code"] for e in closes] == [4413], closes
    assert server.event_count(doc_id) == 0
    # The server goes on: another client writes and reads.
    other = node_client(server.ws_url, doc_id, token, "--shape", "paragraph")
    assert other.call("wait_synced")["ok"]
    assert other.call("make_paragraph")["ok"]
    assert other.call("insert", pos=0, text="fine")["ok"]
    assert server.logged(doc_id, token, "fine") > 0
    # Operators see both refusals on /metrics; without the operators' token it is not there.
    assert _scrape(server, None)[0] == 404
    assert _scrape(server, "not-it")[0] == 404
    status, body = _scrape(server, LIMITS["PALIMPSEST_METRICS_TOKEN"])
    assert status == 200
    assert _sample(body, 'palimpsest_socket_closes_total{code="4413"}') == 2
    assert _sample(body, "palimpsest_rooms_open") == 1
    assert _sample(body, "palimpsest_sockets_open") == 1
    assert _sample(body, "palimpsest_append_batch_events_count") >= 1
    _no_tracebacks(server)


def _scrape(server: LiveServer, token: str | None) -> tuple[int, str]:
    """GET /metrics with a bearer token (or none): status and body."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}/metrics", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""


def _sample(body: str, line_start: str) -> float:
    """The value of the first sample whose line starts with `line_start` (0 if none)."""
    for line in body.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def _logged_state(server: LiveServer, doc_id: str) -> bytes:
    """The document as its log replays, encoded (through the app's own replay)."""
    out = server.manage(
        "shell",
        "-v",
        "0",
        "-c",
        "import base64, uuid; from pycrdt import Doc; "
        "from events.selectors import document_replay; d = Doc(); "
        f"[d.apply_update(u) for u in document_replay(document_id=uuid.UUID('{doc_id}')).updates]; "
        "print(base64.b64encode(d.get_update()).decode())",
    )
    return base64.b64decode(out)


def _fuzz_one(url: str, frame: bytes) -> str:
    """Send one damaged update on its own connection; "closed 4400", "applied" or another."""
    client = RawClient(url)
    try:
        client.read_frames(1, 10)  # the server's SyncStep1
        client.send(frame)
        client.send(EMPTY_STEP1)  # answered only if the update was taken (or ignored)
        received = client.read_until(
            lambda r: r.close_code is not None or any(f[:2] == b"\x00\x01" for f in r.frames),
            timeout=10,
        )
        if received.close_code is not None or received.eof:
            return f"closed {received.close_code}"
        return "applied" if any(f[:2] == b"\x00\x01" for f in received.frames) else "no answer"
    finally:
        client.close()


def test_fuzzed_yjs_updates_are_refused_or_applied_and_the_log_replays_to_the_room(
    server: LiveServer, node_client: Callable[..., NodeClient]
) -> None:
    token = server.token("fuzz")
    doc_id = server.document(token)
    # Real Yjs updates: a stock client typing into the editor's layout.
    stock = node_client(server.ws_url, doc_id, token, "--shape", "paragraph")
    assert stock.call("wait_synced")["ok"]
    assert stock.call("make_paragraph")["ok"]
    assert stock.call("random_edits", count=60, seed=3)["ok"]
    stock.close()
    seeds = server.manage(
        "shell",
        "-v",
        "0",
        "-c",
        "import base64; from events.models import Event; "
        f"[print(base64.b64encode(bytes(e.update)).decode()) for e in "
        f"Event.objects.filter(document_id='{doc_id}').order_by('seq')]",
    )
    updates = [base64.b64decode(line) for line in seeds.split()]
    assert len(updates) >= 60
    rng = random.Random(20261203)
    frames = [create_update_message(mutate(rng.choice(updates), rng)) for _ in range(3000)]
    url = ws_url(server, doc_id, token)
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda frame: _fuzz_one(url, frame), frames))
    counts = {kind: outcomes.count(kind) for kind in set(outcomes)}
    rebuilt = server.log.read_text(errors="replace").count("rebuilt the replica")
    print(f"fuzz: {counts} in {time.monotonic() - started:.1f} s; replica rebuilt {rebuilt} times")
    assert set(counts) <= {"closed 4400", "applied", "closed None"}, counts
    # "closed None": the server sent its 4400 but the client's socket was reset before the
    # client read it (autobahn aborts a connection whose peer has not answered the close
    # within its close-handshake timeout, and this client thread can be that slow under
    # load). Every one must be a 4400 the server logged.
    sent_4400 = server.log.read_text(errors="replace").count("(4400)")
    assert counts.get("closed 4400", 0) + counts.get("closed None", 0) == sent_4400, counts
    assert counts.get("closed None", 0) <= 5, counts
    assert counts.get("closed 4400", 0) > 100 and counts.get("applied", 0) > 100
    # The live document is what its log replays to.
    reader = RawClient(url)
    reader.read_frames(1, 10)
    reader.send(EMPTY_STEP1)
    frames_in = reader.read_frames(2, 10)
    answer = next(f for f in frames_in[1:] if f[:2] == b"\x00\x01")
    reader.close()
    assert same_document(parse_frame(answer).payload, _logged_state(server, doc_id))
    _no_tracebacks(server)


def test_many_clients_then_none_leave_no_traceback(
    server: LiveServer, node_client: Callable[..., NodeClient]
) -> None:
    token = server.token("crowd")
    doc_id = server.document(token)
    clients = [node_client(server.ws_url, doc_id, token) for _ in range(6)]
    for i, client in enumerate(clients):
        assert client.call("wait_synced")["ok"]
        assert client.call("awareness", state={"user": {"name": f"c{i}"}})["ok"]
        assert client.call("insert", pos=0, text=str(i))["ok"]
    converged(clients)
    for client in clients:
        client.close()
    # A later marker: a newcomer sees none of them once the server has handled every close
    # (a caret leaves with its socket), so any traceback from those closes is logged by then.
    newcomer = node_client(server.ws_url, doc_id, token)
    assert newcomer.call("wait_synced")["ok"]
    eventually_sync(lambda: newcomer.call("peers")["peers"] == [], 10, "every close handled")
    _no_tracebacks(server)


def test_text_messages_go_out_as_text_frames(server: LiveServer) -> None:
    """The transport queues and sends binary and text alike; JSON notifications stay text."""
    token = server.token("reader")
    client = RawClient(f"ws://127.0.0.1:{server.port}/ws/notifications?token={token}")
    received = client.read_until(lambda r: bool(r.texts or r.frames), timeout=10)
    client.close()
    assert received.frames == []
    assert json.loads(received.texts[0]) == {"type": "hello", "user": "reader"}
