"""Drills on `make stack --web 2` (HAProxy, two web processes, a worker, beat) on a private
PostgreSQL and Redis, which they restart or pause under stock clients typing: Redis restarted
empty (with an export waiting in its queue), PostgreSQL restarted, and Redis silent (SIGSTOP)
for 30 s. Each checks convergence, that every edit any client made is in the log, and
`verify_log`."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from tests.interop.drills import Typists, require_haproxy
from tests.interop.live import LiveStack, NodeClient, events_until, publish
from tests.interop.services import PrivatePostgres, PrivateRedis
from tests.richdoc import long_document
from tests.waiting import eventually_sync

# A running export this long in one stage has lost its queued step (short, for the drill).
STUCK_S = 5
POSTGRES_DOWN_S = 4.0
RESUBSCRIBED = "the channel layer stopped delivering; subscribing again"


@pytest.fixture
def servers(tmp_path: Path, node_available: None) -> Iterator[tuple[PrivatePostgres, PrivateRedis]]:
    """A PostgreSQL and a Redis of the drill's own."""
    require_haproxy()
    postgres = PrivatePostgres().start()
    redis_server = PrivateRedis(tmp_path).start()
    yield postgres, redis_server
    redis_server.stop()
    postgres.remove()


@pytest.fixture
def stack(tmp_path: Path, servers: tuple[PrivatePostgres, PrivateRedis]) -> Iterator[LiveStack]:
    """The stack on them, with beat dispatching exports every 2 s."""
    postgres, redis_server = servers
    live = LiveStack(
        tmp_path,
        {
            "DATABASE_URL": postgres.url,
            "REDIS_URL": redis_server.url,
            "SECRET_KEY": "drill-test",
            "PALIMPSEST_BEAT_DISPATCH_SECONDS": "2",
            "PALIMPSEST_EXPORT_STUCK_SECONDS": str(STUCK_S),
            # Alice may ask for A, B and one export per notification socket tried (at most 3)
            # while A and B are still pending: the default of 3 pending would answer 429.
            "PALIMPSEST_EXPORTS_PER_USER": "5",
        },
        web=2,
    ).start()
    yield live
    live.stop()


def _cross_process_delay(typists: Typists) -> float:
    """Seconds until a token typed by the first client reaches every other client."""
    token = f"<probe {time.monotonic():.3f}>"
    assert typists.clients[0].call("insert", pos=0, text=token)["ok"]
    return eventually_sync(
        lambda: all(token in c.text() for c in typists.clients[1:]), 30, "the probe relayed"
    )


def _relayed_within(typists: Typists, seconds: float) -> bool:
    """Whether an edit by the first client reaches every other client within `seconds`."""
    token = f"<probe {time.monotonic():.4f}>"
    assert typists.clients[0].call("insert", pos=0, text=token)["ok"]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if all(token in c.text() for c in typists.clients[1:]):
            return True
        time.sleep(0.02)
    return False


def _bus_relays(typists: Typists) -> bool:
    """Three edits in a row relayed to everyone within 0.3 s each."""
    return all(_relayed_within(typists, 0.3) for _ in range(3))


def _export(stack: LiveStack, token: str, export_id: str) -> dict[str, Any]:
    """An export as the API shows it."""
    shown: dict[str, Any] = stack.api("GET", f"/exports/{export_id}", token)
    return shown


def _export_announced(
    stack: LiveStack,
    token: str,
    notes: ClientConnection,
    notes_url: str,
    doc_id: str,
    sockets: contextlib.ExitStack,
) -> int:
    """Ask for an export of `doc_id` and wait for its `export.done` on the watching socket;
    on 1012 (the process moved to a new layer), open a new socket and ask again. How many
    sockets closed with 1012 (at most 3 tries)."""
    for closed_count in range(3):
        try:
            notes.send(json.dumps({"type": "watch", "document": doc_id}))
            while json.loads(notes.recv(timeout=10))["type"] != "watching":
                pass  # export progress announced before: the answer to our watch comes after
            wanted = stack.api("POST", f"/docs/{doc_id}/exports", token, {})["id"]
            seen = events_until(notes, "export.done", within=120)
            while seen[-1]["export"]["id"] != wanted:
                seen += events_until(notes, "export.done", within=120)
            return closed_count
        except ConnectionClosed as closed:
            assert closed.rcvd is not None and closed.rcvd.code == 1012, closed
            notes = sockets.enter_context(connect(notes_url))
            assert json.loads(notes.recv(timeout=10))["type"] == "hello"
    raise AssertionError("three notification sockets in a row closed with 1012")


def test_redis_restarted_empty_loses_no_edit_and_no_export(
    stack: LiveStack,
    servers: tuple[PrivatePostgres, PrivateRedis],
    node_client: Callable[..., NodeClient],
) -> None:
    _, redis_server = servers
    token = stack.token("alice")
    long_doc = stack.document(token)
    publish(stack, long_doc, token, long_document(150))
    notes_url = f"ws://127.0.0.1:{stack.port}/ws/notifications?token={token}"
    sockets = contextlib.ExitStack()
    notes = sockets.enter_context(connect(notes_url))
    assert json.loads(notes.recv(timeout=10))["type"] == "hello"
    with sockets, Typists(stack, node_client) as typists:
        # The worker (one process) busy rendering A, so B's first step waits in Redis's queue.
        a = stack.api("POST", f"/docs/{long_doc}/exports", token, {})
        eventually_sync(
            lambda: _export(stack, token, a["id"])["stage"] == "rendering PDF", 60, "A renders"
        )
        b = stack.api("POST", f"/docs/{typists.doc_id}/exports", token, {})
        assert _export(stack, token, b["id"])["stage"] == "starting"
        redis_server.restart_empty()
        restarted = time.monotonic()
        # Relays across processes go through pub/sub again: each web process kept its
        # subscriptions, or found them dead (its probe never came back) and subscribed again
        # on a new layer. Three edits in a row each reach every client within 0.3 s, which
        # catch-up from the log alone (every 2 s) would do by chance once in ~300 tries.
        bus_back = eventually_sync(lambda: _bus_relays(typists), 30, "pub/sub relaying again")
        typists.wait_typed(10)
        resubscribed = stack.log.read_text().count(RESUBSCRIBED)
        # The notification socket opened before: still subscribed (its process kept its
        # layer), or closed with 1012 when its process moved to a new one (which may happen
        # until that process's probe has failed once), and then opened again. Either way an
        # export asked for on an open socket is announced on it.
        reopened = _export_announced(stack, token, notes, notes_url, typists.doc_id, sockets)
    typists.check_nothing_lost()
    # A's step was held by the worker (Celery hands it back); B's queued step died with
    # Redis, and the dispatcher queues B again once it has sat in one stage too long.
    eventually_sync(
        lambda: all(_export(stack, token, e["id"])["status"] == "done" for e in (a, b)),
        STUCK_S + 90,
        "both exports done",
    )
    took = time.monotonic() - restarted
    print(
        f"Redis restarted empty: pub/sub relaying again {bus_back:.1f} s after ({resubscribed} "
        f"of 2 web processes started over on a new layer, {reopened} notification socket(s) "
        f"reopened after 1012); both exports done {took:.1f} s after the restart"
    )
    assert f"export {b['id']} stuck at 'starting'" in stack.log.read_text()


def test_postgres_restarted_loses_no_edit(
    stack: LiveStack,
    servers: tuple[PrivatePostgres, PrivateRedis],
    node_client: Callable[..., NodeClient],
) -> None:
    postgres, _ = servers
    with Typists(stack, node_client) as typists:
        started = time.monotonic()
        postgres.stop()
        # Down longer than the appender retries a batch (about 2.5 s): rooms are reset.
        time.sleep(POSTGRES_DOWN_S)
        postgres.start()
        down = time.monotonic() - started
        typists.wait_typed(20)
    typists.check_nothing_lost()
    codes = typists.close_codes()
    print(f"PostgreSQL down {down:.2f} s: closes seen {codes}")
    assert 4500 in codes, codes
    assert set(codes) <= {4500, 1006, 1011}, codes


def test_redis_silent_for_30_s_relays_go_on(
    stack: LiveStack,
    servers: tuple[PrivatePostgres, PrivateRedis],
    node_client: Callable[..., NodeClient],
) -> None:
    _, redis_server = servers
    token = stack.token("alice")
    with Typists(stack, node_client) as typists:
        redis_server.pause()
        try:
            paused_at = time.monotonic()
            typists.wait_typed(20)
            # Every client still gets everyone's edits: in-process at once, from the log
            # (catch-up) across processes.
            during = _cross_process_delay(typists)
            # A request that queues a task answers within its own timeout.
            asked = time.monotonic()
            status, _ = stack.api_status("POST", f"/docs/{typists.doc_id}/exports", token, {})
            answered = time.monotonic() - asked
            time.sleep(max(0.0, 30 - (time.monotonic() - paused_at)))
        finally:
            redis_server.resume()
        typists.wait_typed(10)
    typists.check_nothing_lost()
    print(
        f"Redis silent 30 s: relayed to every client within {during:.2f} s meanwhile; "
        f"POST /exports answered {status} in {answered:.2f} s"
    )
    assert during < 5.0
    # Bounded by the Redis clients' timeouts: two tries to queue the task (3 s each), and the
    # notifications given up after 2 s.
    assert status == 202 and answered < 15.0
