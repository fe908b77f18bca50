"""Drills on `make stack --web 2` (HAProxy, two web processes, a worker, beat) on a private
PostgreSQL and Redis, which they restart or pause under stock clients typing: Redis restarted
empty (with an export waiting in its queue), PostgreSQL restarted, and Redis silent (SIGSTOP)
for 30 s. Each checks convergence, that every edit any client made is in the log, and
`verify_log`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.interop.drills import Typists, require_haproxy
from tests.interop.live import LiveStack, NodeClient, publish
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


def _export(stack: LiveStack, token: str, export_id: str) -> dict[str, Any]:
    """An export as the API shows it."""
    shown: dict[str, Any] = stack.api("GET", f"/exports/{export_id}", token)
    return shown


def test_redis_restarted_empty_loses_no_edit_and_no_export(
    stack: LiveStack,
    servers: tuple[PrivatePostgres, PrivateRedis],
    node_client: Callable[..., NodeClient],
) -> None:
    _, redis_server = servers
    token = stack.token("alice")
    long_doc = stack.document(token)
    publish(stack, long_doc, token, long_document(150))
    with Typists(stack, node_client) as typists:
        # The worker (one process) busy rendering A, so B's first step waits in Redis's queue.
        a = stack.api("POST", f"/docs/{long_doc}/exports", token, {})
        eventually_sync(
            lambda: _export(stack, token, a["id"])["stage"] == "rendering PDF", 60, "A renders"
        )
        b = stack.api("POST", f"/docs/{typists.doc_id}/exports", token, {})
        assert _export(stack, token, b["id"])["stage"] == "starting"
        redis_server.restart_empty()
        restarted = time.monotonic()
        # Each web process finds its pub/sub subscriptions dead (a probe that does not come
        # back) and subscribes again on a new layer; meanwhile catch-up from the log relays.
        resubscribed = eventually_sync(
            lambda: stack.log.read_text().count(RESUBSCRIBED) >= 2, 20, "both resubscribed"
        )
        typists.wait_typed(10)
        delay = _cross_process_delay(typists)
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
        f"Redis restarted empty: both web processes subscribed again {resubscribed:.1f} s "
        f"after; then relayed to every client in {delay:.2f} s; both exports done "
        f"{took:.1f} s after the restart"
    )
    assert delay < 3.0
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
    assert status == 202 and answered < 10.0
