"""Drills on several web processes behind HAProxy (`make stack --web 2` on PostgreSQL and
Redis), under stock clients typing: a rolling SIGTERM of each web process (a deploy), and a
SIGKILL of one. No edit any client made is lost, the clients converge, and the log verifies."""

from __future__ import annotations

import functools
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests.interop.live import LiveStack, NodeClient, converged, logged_text
from tests.waiting import eventually_sync

DRILL_REDIS = "redis://127.0.0.1:6379/2"
DRAIN_S = 10.0
CLIENTS = 6


@pytest.fixture
def stack(tmp_path: Path, shared_database: str, node_available: None) -> Iterator[LiveStack]:
    """Two web processes behind HAProxy, a worker and beat, on a database of their own."""
    if shutil.which("haproxy") is None and not Path("/usr/sbin/haproxy").exists():
        if os.environ.get("CI"):
            pytest.fail("haproxy is not installed (apt-get install haproxy)")
        pytest.skip("haproxy is not installed")
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


class Typists:
    """Stock clients through the load balancer, each typing its own numbered tokens."""

    def __init__(self, stack: LiveStack, node_client: Callable[..., NodeClient]) -> None:
        token = stack.token("alice")
        self.stack, self.token = stack, token
        self.doc_id = stack.document(token)
        self.clients = [node_client(stack.ws_url, self.doc_id, token) for _ in range(CLIENTS)]
        for client in self.clients:
            assert client.call("wait_synced")["ok"]
        self.typed: list[list[str]] = [[] for _ in self.clients]
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._type, args=(i,), daemon=True)
            for i in range(len(self.clients))
        ]

    def _type(self, index: int) -> None:
        """Type until stopped (at most 3,000 tokens, every 50 ms)."""
        client = self.clients[index]
        for n in range(3000):
            if self._stop.is_set():
                return
            token = f"<{index}.{n}>"
            if client.call("insert", pos=0, text=token)["ok"]:
                self.typed[index].append(token)
            time.sleep(0.05)

    def __enter__(self) -> Typists:
        for thread in self._threads:
            thread.start()
        self.wait_typed(10)
        return self

    def wait_typed(self, more: int) -> None:
        """Wait until every client has typed `more` tokens more."""
        targets = [len(t) + more for t in self.typed]
        eventually_sync(
            lambda: all(len(t) >= n for t, n in zip(self.typed, targets, strict=True)),
            60,
            "typing",
        )

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def check_nothing_lost(self) -> str:
        """Everyone converges on a text holding every token typed; the log holds the same."""
        final = converged(self.clients, timeout=60)
        every = [t for tokens in self.typed for t in tokens]
        assert [t for t in every if t not in final] == []
        eventually_sync(
            lambda: logged_text(self.stack, self.doc_id) == final, 30, "the log holds it all"
        )
        assert "chain intact" in self.stack.manage("verify_log")
        return final

    def close_codes(self) -> list[int | None]:
        """Every close any client saw, in order per client."""
        return [e["code"] for c in self.clients for e in c.events if e.get("event") == "closed"]


def _wait_exit(pid: int, within: float) -> float:
    """Wait for a process to be gone (it is the stack's child: gone or a zombie); seconds."""
    return eventually_sync(lambda: _gone(pid), within, f"process {pid} to exit")


def _gone(pid: int) -> bool:
    """Whether a process has exited (a zombie counts: the stack reaps it within 0.2 s)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "State:\tZ" in status


def test_a_rolling_sigterm_of_each_web_process_loses_nothing(
    stack: LiveStack, node_client: Callable[..., NodeClient]
) -> None:
    with Typists(stack, node_client) as typists:
        took = []
        for port in stack.web_ports:
            pid = stack.web_pid(port)
            assert pid is not None
            os.kill(pid, signal.SIGTERM)
            took.append(_wait_exit(pid, DRAIN_S + 5))
            # The stack starts it again; HAProxy routes to it once /healthz answers 200.
            eventually_sync(functools.partial(stack.healthy, port), 60, f"web on {port} back")
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
        _wait_exit(pid, 5)
        typists.wait_typed(20)  # the clients it had come back through HAProxy and type on
    typists.check_nothing_lost()
    codes = typists.close_codes()
    print(f"SIGKILL of one web process: closes seen {codes}")
    assert codes, "nobody was on the killed process"
