"""Drills on `make stack --web 2` (HAProxy, two web processes, a worker, beat) on a private
PostgreSQL and Redis, which they restart or pause under stock clients typing: Redis restarted
empty (with an export waiting in its queue), PostgreSQL restarted, and Redis silent (SIGSTOP)
for 30 s. Each checks convergence, that every edit any client made is in the log, and
`verify_log`."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.interop.drills import Typists, require_haproxy
from tests.interop.live import LiveStack, NodeClient, _children, _cmdline
from tests.interop.services import PrivatePostgres, PrivateRedis
from tests.waiting import eventually_sync

# A running export this long in one stage has lost its queued step (short, for the drill).
STUCK_S = 5


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


def _worker_pids(stack: LiveStack) -> list[int]:
    """The Celery worker's main process and its pool."""
    assert stack.process is not None
    mains = [pid for pid in _children(stack.process.pid) if b"worker" in _cmdline(pid).split(b"\0")]
    return mains + [child for pid in mains for child in _children(pid)]


def _cross_process_delay(typists: Typists) -> float:
    """Seconds until a token typed by the first client reaches every other client."""
    token = f"<probe {time.monotonic():.3f}>"
    assert typists.clients[0].call("insert", pos=0, text=token)["ok"]
    return eventually_sync(
        lambda: all(token in c.text() for c in typists.clients[1:]), 30, "the probe relayed"
    )


def test_redis_restarted_empty_loses_no_edit_and_no_export(
    stack: LiveStack,
    servers: tuple[PrivatePostgres, PrivateRedis],
    node_client: Callable[..., NodeClient],
) -> None:
    _, redis_server = servers
    token = stack.token("alice")
    with Typists(stack, node_client) as typists:
        # An export queued in Redis that no worker has taken: the worker is stopped.
        workers = _worker_pids(stack)
        for pid in workers:
            os.kill(pid, signal.SIGSTOP)
        try:
            export = stack.api("POST", f"/docs/{typists.doc_id}/exports", token, {})
            eventually_sync(
                lambda: stack.api("GET", f"/exports/{export['id']}", token)["stage"] == "starting",
                10,
                "the export handed to the queue",
            )
            redis_server.restart_empty()
        finally:
            for pid in workers:
                os.kill(pid, signal.SIGCONT)
        typists.wait_typed(10)
        delay = _cross_process_delay(typists)
    typists.check_nothing_lost()
    # The export's queued step died with Redis; the dispatcher queues it again.
    started = time.monotonic()
    eventually_sync(
        lambda: stack.api("GET", f"/exports/{export['id']}", token)["status"] == "done",
        STUCK_S + 60,
        "the lost export done",
    )
    print(
        f"Redis restarted empty: relayed to every client {delay:.2f} s after; the lost export "
        f"done {time.monotonic() - started:.1f} s later"
    )
    assert delay < 3.0


def test_postgres_restarted_loses_no_edit(
    stack: LiveStack,
    servers: tuple[PrivatePostgres, PrivateRedis],
    node_client: Callable[..., NodeClient],
) -> None:
    postgres, _ = servers
    with Typists(stack, node_client) as typists:
        started = time.monotonic()
        postgres.restart()
        down = time.monotonic() - started
        typists.wait_typed(20)
    typists.check_nothing_lost()
    codes = typists.close_codes()
    print(f"PostgreSQL down {down:.2f} s: closes seen {codes}")
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
