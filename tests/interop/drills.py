"""What the drills share: stock clients typing through the load balancer, and waiting for
a process to exit."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import require
from tests.interop.live import LiveStack, NodeClient, converged, logged_text
from tests.waiting import eventually_sync

CLIENTS = 6


def require_haproxy() -> None:
    """HAProxy (Debian's package), which `make stack --web N` puts in front."""
    require("haproxy", bool(shutil.which("haproxy")) or Path("/usr/sbin/haproxy").exists())


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


def wait_exit(pid: int, within: float) -> float:
    """Wait for a process to be gone (it is the stack's child: gone or a zombie); seconds."""
    return eventually_sync(lambda: gone(pid), within, f"process {pid} to exit")


def gone(pid: int) -> bool:
    """Whether a process has exited (a zombie counts: the stack reaps it within 0.2 s)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "State:\tZ" in status
