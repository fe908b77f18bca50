"""Drills on several web processes behind HAProxy (`make stack --web 2` on PostgreSQL and
Redis), under stock clients typing: a rolling SIGTERM of each web process (a deploy), and a
SIGKILL of one. No edit any client made is lost, the clients converge, and the log verifies."""

from __future__ import annotations

import functools
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests.interop.drills import Typists, require_haproxy, wait_exit
from tests.interop.live import LiveStack, NodeClient
from tests.waiting import eventually_sync

DRILL_REDIS = "redis://127.0.0.1:6379/2"
DRAIN_S = 10.0
HAPROXY_RISE_S = 2.5


@pytest.fixture
def stack(tmp_path: Path, shared_database: str, node_available: None) -> Iterator[LiveStack]:
    """Two web processes behind HAProxy, a worker and beat, on a database of their own."""
    require_haproxy()
    redis.Redis.from_url(DRILL_REDIS).flushdb()
    live = LiveStack(
        tmp_path,
        {
            "DATABASE_URL": shared_database,
            "REDIS_URL": DRILL_REDIS,
            "SECRET_KEY": "drill-test",
            "PALIMPSEST_DRAIN_SECONDS": str(DRAIN_S),
        },
        web=2,
    ).start()
    yield live
    live.stop()


def test_a_rolling_sigterm_of_each_web_process_loses_nothing(
    stack: LiveStack, node_client: Callable[..., NodeClient]
) -> None:
    with Typists(stack, node_client) as typists:
        took = []
        for port in stack.web_ports:
            pid = stack.web_pid(port)
            assert pid is not None
            os.kill(pid, signal.SIGTERM)
            took.append(wait_exit(pid, DRAIN_S + 5))
            # The stack starts it again; HAProxy routes to it after two good checks 1 s apart
            # ("rise 2"), which a deploy waits for before it stops the next process.
            eventually_sync(functools.partial(stack.healthy, port), 60, f"web on {port} back")
            time.sleep(HAPROXY_RISE_S)
            typists.wait_typed(10)
    final = typists.check_nothing_lost()
    codes = typists.close_codes()
    print(
        f"rolling SIGTERM: exits {', '.join(f'{t:.2f}' for t in took)} s after the signal; "
        f"closes seen {sorted(set(codes), key=str)}; {len(final)} characters, all logged"
    )
    assert all(t < DRAIN_S for t in took), took
    assert codes and set(codes) == {1012}, codes


def test_a_web_process_killed_loses_nothing(
    stack: LiveStack, node_client: Callable[..., NodeClient]
) -> None:
    with Typists(stack, node_client) as typists:
        port = stack.web_ports[0]
        pid = stack.web_pid(port)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        wait_exit(pid, 5)
        typists.wait_typed(20)  # the clients it had come back through HAProxy and type on
    typists.check_nothing_lost()
    codes = typists.close_codes()
    print(f"SIGKILL of one web process: closes seen {codes}")
    assert codes, "nobody was on the killed process"
