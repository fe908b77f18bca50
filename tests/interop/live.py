"""Real server processes (daphne) and stock Node Yjs clients, for interop tests."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from pycrdt import Doc, create_sync_message, create_update_message
from websockets.sync.client import ClientConnection, connect

from collab.sync.protocol import FrameKind, parse_frame

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = ROOT / "tests" / "interop" / "clients"
TRACES = ROOT / "tests" / "data" / "traces"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_ports(count: int) -> int:
    """The first of `count` consecutive TCP ports nobody listens on right now.

    A stack with several web processes listens on its port and the ones after it; a port
    that was free alone measured taken at +1 (a drill's own PostgreSQL or Redis).
    """
    for _ in range(100):
        first = free_port()
        if all(_bindable(first + i) for i in range(1, count)):
            return first
    raise RuntimeError(f"no {count} consecutive free ports found in 100 tries")


def _bindable(port: int) -> bool:
    """Whether nobody listens on 127.0.0.1:`port` right now."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class LiveServer:
    """One `daphne collab.asgi:application` process on its own port and data directory."""

    def __init__(self, var_dir: Path, env: dict[str, str] | None = None, ports: int = 1) -> None:
        self.var_dir = var_dir
        self.port = free_ports(ports)
        self.env = {
            **os.environ,
            "PALIMPSEST_VAR_DIR": str(var_dir),
            "DJANGO_SETTINGS_MODULE": "collab.settings",
            # Its pages' origin (CSRF and WebSocket Origin checks) is derived from PORT.
            "PORT": str(self.port),
            **(env or {}),
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.log = var_dir / f"daphne-{self.port}.log"

    @property
    def ws_url(self) -> str:
        """The serverUrl a y-websocket provider takes."""
        return f"ws://127.0.0.1:{self.port}/ws/docs"

    def manage(self, *args: str) -> str:
        """Run a management command against this server's database; its stdout."""
        out = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()

    def start(self) -> LiveServer:
        """Migrate, start daphne and wait until it answers."""
        self.manage("migrate", "--noinput")
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "collab.server",
                    "-b",
                    "127.0.0.1",
                    "-p",
                    str(self.port),
                    "collab.asgi:application",
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"daphne exited: {self.log.read_text()}") from None
                time.sleep(0.1)
        raise RuntimeError("daphne did not start in 30 s")

    def stop(self) -> None:
        """Stop daphne with SIGTERM, as an operator would."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def token(self, username: str) -> str:
        """A new API token for a user (created if missing)."""
        return self.manage("issue_token", username, "--create")

    def api(self, method: str, path: str, token: str, body: Any = None) -> Any:
        """Call the JSON API."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"null")

    def api_status(
        self, method: str, path: str, token: str, body: Any = None, timeout: float = 60
    ) -> tuple[int, Any]:
        """Call the JSON API; the status code and the decoded body, errors included."""
        try:
            request = urllib.request.Request(
                f"http://127.0.0.1:{self.port}/api{path}",
                method=method,
                data=None if body is None else json.dumps(body).encode(),
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def history(self, doc_id: str, token: str) -> tuple[list[dict[str, Any]], int]:
        """Every event of the history API, oldest first (all pages), and the head it reported."""
        events: list[dict[str, Any]] = []
        after: int | None = 0
        head = 0
        while after is not None:
            page = self.api("GET", f"/docs/{doc_id}/history?after={after}&limit=1000", token)
            events.extend(page["events"])
            head, after = page["head"], page["next_after"]
        return events, head

    def content_text(self, doc_id: str, token: str, at: int | None = None) -> tuple[int, str]:
        """The document's plain text right after event `at` (default: now), and that seq."""
        query = "format=text" if at is None else f"format=text&at={at}"
        reply = self.api("GET", f"/docs/{doc_id}/content?{query}", token)
        return int(reply["seq"]), str(reply["content"])

    def logged(self, doc_id: str, token: str, text: str, timeout: float = 30) -> int:
        """Wait until the log's latest version reads `text`; the seq of that version."""
        deadline = time.monotonic() + timeout
        while True:
            seq, content = self.content_text(doc_id, token)
            if content == text:
                return seq
            assert time.monotonic() < deadline, f"the log reads {content!r}, not {text!r}"
            time.sleep(0.1)

    def document(self, owner_token: str, **members: str) -> str:
        """Create a document and share it: members maps username → role."""
        doc_id = str(self.api("POST", "/docs", owner_token, {"title": "interop"})["id"])
        for username, role in members.items():
            self.api(
                "POST", f"/docs/{doc_id}/members", owner_token, {"username": username, "role": role}
            )
        return doc_id

    def event_count(self, doc_id: str) -> int:
        """Events in this document's log (packed or not)."""
        return int(
            self.manage(
                "shell",
                "-v",
                "0",
                "-c",
                f"from events.log import events_logged; print(events_logged('{doc_id}'))",
            )
        )


def publish(server: LiveServer, doc_id: str, token: str, doc: Doc[Any]) -> None:
    """Send a document as one update, then wait until the server holds it durably.

    The server answers a SyncStep1 only once every update it accepted is in the log.
    """
    url = f"{server.ws_url}/{doc_id}?token={token}"
    with connect(url, max_size=None) as ws:
        ws.send(create_update_message(doc.get_update()))
        ws.send(create_sync_message(Doc()))
        while parse_frame(_recv_bytes(ws)).kind is not FrameKind.SYNC_STEP2:
            pass


def _recv_bytes(ws: ClientConnection) -> bytes:
    message = ws.recv(timeout=30)
    assert isinstance(message, bytes)
    return message


def events_until(ws: ClientConnection, until: str, within: float = 60) -> list[dict[str, Any]]:
    """Notifications received until one of type `until` (included)."""
    seen = []
    deadline = time.monotonic() + within
    while True:
        event = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        seen.append(event)
        if event["type"] == until:
            return seen


class NodeClient:
    """A stock y-websocket client (driver.mjs) driven over JSON lines."""

    def __init__(self, server_url: str, room: str, token: str, *extra: str) -> None:
        self.process = subprocess.Popen(
            [
                "node",
                str(CLIENTS / "driver.mjs"),
                "--url",
                server_url,
                "--room",
                room,
                # "=" form: a token may start with "-", which parseArgs would take for a flag.
                f"--token={token}",
                *extra,
            ],
            cwd=CLIENTS,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.events: list[dict[str, Any]] = []
        self._replies: queue.Queue[dict[str, Any]] = queue.Queue()
        # One command in flight at a time: threads share a client (a typist and a checker),
        # and a reply carries no id to match it to its command.
        self._calling = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        """Sort stdout lines into replies and events."""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            message = json.loads(line)
            if "event" in message:
                self.events.append(message)
            else:
                self._replies.put(message)

    def call(self, cmd: str, wait: float = 120, **args: Any) -> dict[str, Any]:
        """Send a command and wait up to `wait` seconds for its reply (node takes ms)."""
        assert self.process.stdin is not None
        with self._calling:
            self.process.stdin.write(json.dumps({"cmd": cmd, **args}) + "\n")
            self.process.stdin.flush()
            try:
                return self._replies.get(timeout=wait)
            except queue.Empty:
                raise TimeoutError(f"no reply to {cmd} in {wait} s; events {self.events}") from None

    def text(self) -> str:
        """The client's current text."""
        return str(self.call("text")["text"])

    def close(self) -> None:
        """Close the client and wait for its process."""
        if self.process.poll() is None:
            with contextlib.suppress(TimeoutError, BrokenPipeError):
                self.call("close", wait=5)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()


def replay(server: LiveServer, doc_id: str, token: str, *extra: str, timeout: float = 540) -> Any:
    """Run replay.mjs (writer and reader clients) against the server; its result line."""
    out = subprocess.run(
        [
            "node",
            str(CLIENTS / "replay.mjs"),
            "--url",
            server.ws_url,
            "--room",
            doc_id,
            f"--token={token}",
            *extra,
        ],
        cwd=CLIENTS,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def converged(clients: list[NodeClient], timeout: float = 30) -> str:
    """Wait until every client holds the same text; that text."""
    deadline = time.monotonic() + timeout
    while True:
        texts = {client.text() for client in clients}
        if len(texts) == 1:
            return texts.pop()
        assert time.monotonic() < deadline, f"no convergence: {len(texts)} different texts"
        time.sleep(0.2)


def random_edits_together(clients: list[NodeClient], count: int, delay_ms: int) -> None:
    """Every client makes `count` random edits at the same time (seeded per client)."""
    with ThreadPoolExecutor(len(clients)) as pool:
        edits = [
            pool.submit(client.call, "random_edits", count=count, seed=i, delay_ms=delay_ms)
            for i, client in enumerate(clients)
        ]
        assert all(edit.result()["ok"] for edit in edits)


class LiveStack(LiveServer):
    """`python -m collab.stack`: web, Celery worker and beat as separate processes."""

    def __init__(
        self, var_dir: Path, env: dict[str, str], concurrency: int = 1, web: int = 1
    ) -> None:
        # Several web processes listen on the ports after the stack's (collab.stack).
        super().__init__(var_dir, env, ports=1 if web == 1 else web + 1)
        self.concurrency = concurrency
        self.web = web
        self.log = var_dir / "stack.log"

    def start(self) -> LiveStack:
        """Start the stack and wait until the web process answers /healthz."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "collab.stack",
                    "--port",
                    str(self.port),
                    "--concurrency",
                    str(self.concurrency),
                    "--web",
                    str(self.web),
                ],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                url = f"http://127.0.0.1:{self.port}/healthz"
                with urllib.request.urlopen(url, timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                if self.process.poll() is not None:
                    raise RuntimeError(f"the stack exited: {self.log.read_text()}") from None
                time.sleep(0.2)
        raise RuntimeError(f"the stack did not start in 60 s: {self.log.read_text()}")

    @property
    def web_ports(self) -> list[int]:
        """The web processes' own ports (behind HAProxy on `port` when there are several)."""
        return [self.port] if self.web == 1 else [self.port + i for i in range(1, self.web + 1)]

    def web_pid(self, port: int) -> int | None:
        """The pid of the web process serving on `port` now, if any."""
        assert self.process is not None
        for pid in _children(self.process.pid):
            args = _cmdline(pid).split(b"\0")
            if b"collab.server" in args and str(port).encode() in args:
                return pid
        return None

    def healthy(self, port: int) -> bool:
        """Whether the process on `port` answers /healthz with 200."""
        try:
            url = f"http://127.0.0.1:{port}/healthz"
            with urllib.request.urlopen(url, timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def worker_pool_pids(self) -> list[int]:
        """The Celery worker's pool processes (the ones that run tasks)."""
        assert self.process is not None
        workers = [
            pid for pid in _children(self.process.pid) if b"worker" in _cmdline(pid).split(b"\0")
        ]
        return [child for pid in workers for child in _children(pid)]


def _children(pid: int) -> list[int]:
    """Direct child processes of `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name in parentheses may contain spaces; the parent pid follows it.
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == pid:
            found.append(int(entry.name))
    return found


def _cmdline(pid: int) -> bytes:
    """A process's command line, NUL-separated."""
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes()
    except OSError:
        return b""


def logged_text(server: LiveServer, doc_id: str, name: str = "text") -> str:
    """The Y.Text `name` of a document as its log replays (works while the server is down)."""
    return server.manage(
        "shell",
        "-v",
        "0",
        "-c",
        "import uuid; from pycrdt import Doc, Text; "
        "from events.selectors import document_replay; d = Doc(); "
        f"[d.apply_update(u) for u in document_replay(document_id=uuid.UUID('{doc_id}')).updates]; "
        f"print(str(d.get({name!r}, type=Text)), end='')",
    )
