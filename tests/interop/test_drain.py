"""A web process stopped with SIGTERM (a deploy, Ctrl-C) drains: while it does, `/healthz`
answers 503 and new sockets are refused; every accepted edit is appended and relayed; each
client is closed with 1012 and reconnects; the process exits within PALIMPSEST_DRAIN_SECONDS."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.interop.live import LiveServer, NodeClient, converged, logged_text
from tests.interop.raw import RawClient, ws_url
from tests.waiting import eventually_sync

DRAIN_S = 10.0


def _typing(client: NodeClient, name: str, stop: threading.Event, typed: list[str]) -> None:
    """Type tokens until stopped (at most 2,000), keeping those the client accepted."""
    for i in range(2000):
        if stop.is_set():
            return
        token = f"<{name}{i}>"
        if client.call("insert", pos=0, text=token)["ok"]:
            typed.append(token)
        time.sleep(0.01)


def _health(port: int) -> int:
    """`/healthz`'s status (0: no answer)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def _first_close(client: NodeClient) -> int | None:
    """The code of the first close the client saw."""
    return next((e["code"] for e in client.events if e.get("event") == "closed"), None)


def _closed(client: NodeClient) -> Callable[[], bool]:
    """Whether the client has seen a close yet."""
    return lambda: _first_close(client) is not None


def test_sigterm_drains_then_exits_and_clients_lose_nothing(
    tmp_path: Path, node_client: Callable[..., NodeClient]
) -> None:
    # faulthandler: a stop that hangs dumps every thread's stack (on SIGABRT, below).
    env = {"PALIMPSEST_DRAIN_SECONDS": str(DRAIN_S), "PYTHONFAULTHANDLER": "1"}
    server = LiveServer(tmp_path, env).start()
    try:
        token = server.token("alice")
        doc_id = server.document(token)
        clients = {name: node_client(server.ws_url, doc_id, token) for name in "abc"}
        for client in clients.values():
            assert client.call("wait_synced")["ok"]
        # A socket that will not answer the close keeps the drain going for a moment, long
        # enough to see the health check and a newcomer turned away.
        silent = RawClient(ws_url(server, doc_id, token))
        assert silent.open

        stop = threading.Event()
        typed: dict[str, list[str]] = {name: [] for name in clients}
        typists = [
            threading.Thread(target=_typing, args=(c, n, stop, typed[n]), daemon=True)
            for n, c in clients.items()
        ]
        for typist in typists:
            typist.start()
        eventually_sync(lambda: all(len(t) >= 20 for t in typed.values()), 30, "typing")

        statuses: list[int] = []
        refused: list[int] = []

        def watch() -> None:
            for _ in range(400):  # at most ~20 s, polled as a load balancer would, faster
                status = _health(server.port)
                statuses.append(status)
                if status == 503 and not refused:
                    try:
                        with connect(f"{server.ws_url}/{doc_id}?token={token}", open_timeout=2):
                            refused.append(101)
                    except InvalidStatus as exc:
                        refused.append(exc.response.status_code)
                    except OSError:
                        refused.append(0)
                if status == 0:
                    return
                time.sleep(0.02)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        eventually_sync(lambda: statuses, 10, "a first health check")
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        try:
            code = server.process.wait(timeout=DRAIN_S + 20)
        except subprocess.TimeoutExpired:
            server.process.send_signal(signal.SIGABRT)
            time.sleep(2)
            server.process.kill()
            raise
        took = time.monotonic() - started
        server.process = None
        stop.set()
        watcher.join(30)
        for typist in typists:
            typist.join(30)
        # What each client held when it was closed: everything relayed to it, and its own.
        print(f"drained and exited {took:.2f} s after SIGTERM (bound {DRAIN_S:g} s)")
        assert code == 0, server.log.read_text()[-3000:]
        assert took < DRAIN_S
        assert 503 in statuses and statuses[0] == 200, statuses
        assert refused == [503], refused
        for name, client in clients.items():
            eventually_sync(_closed(client), 10, f"{name} closed")
            assert _first_close(client) == 1012, client.events
        # Nothing a client saw before the close is missing from the log the process left.
        seen_before = {name: client.text() for name, client in clients.items()}
        logged = logged_text(server, doc_id)
        for name, text in seen_before.items():
            others = [t for n, tokens in typed.items() if n != name for t in tokens]
            relayed = [t for t in others if t in text]
            assert relayed, f"{name} saw nothing from the others"
            missing = [t for t in relayed if t not in logged]
            assert missing == [], f"{name} saw {len(missing)} edits the log lacks: {missing[:5]}"

        # The clients come back on their own and hand over what was not taken; all converge.
        server.start()
        final = converged(list(clients.values()), timeout=60)
        every = [t for tokens in typed.values() for t in tokens]
        assert [t for t in every if t not in final] == []
        eventually_sync(lambda: logged_text(server, doc_id) == final, 30, "all of it logged")
        assert "chain intact" in server.manage("verify_log")
        silent.close()
    finally:
        server.stop()
