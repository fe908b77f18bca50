"""The production topology without Docker (`make stack`): web, worker and beat processes on
Redis and PostgreSQL, driven over HTTP and WebSockets as a browser or script would."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from pycrdt import Doc, create_sync_message, create_update_message
from websockets.sync.client import ClientConnection, connect

from collab.sync.protocol import FrameKind, parse_frame
from tests.interop.live import LiveStack
from tests.richdoc import every_node_type, long_document

STACK_REDIS = "redis://127.0.0.1:6379/1"


@pytest.fixture
def stack(tmp_path: Path, shared_database: str) -> Iterator[LiveStack]:
    """The stack on a fresh database and an emptied Redis database of its own."""
    redis.Redis.from_url(STACK_REDIS).flushdb()
    live = LiveStack(
        tmp_path,
        {
            "DATABASE_URL": shared_database,
            "REDIS_URL": STACK_REDIS,
            "SECRET_KEY": "stack-test",
            "PALIMPSEST_HEARTBEAT_SECONDS": "30",
        },
    ).start()
    yield live
    live.stop()


def _publish(stack: LiveStack, doc_id: str, token: str, doc: Doc[Any]) -> None:
    """Send a document as one update, then wait until the server holds it durably.

    The server answers a SyncStep1 only once every update it accepted is in the log.
    """
    url = f"{stack.ws_url}/{doc_id}?token={token}"
    with connect(url, max_size=None) as ws:
        ws.send(create_update_message(doc.get_update()))
        ws.send(create_sync_message(Doc()))
        while parse_frame(_recv_bytes(ws)).kind is not FrameKind.SYNC_STEP2:
            pass


def _recv_bytes(ws: ClientConnection) -> bytes:
    message = ws.recv(timeout=30)
    assert isinstance(message, bytes)
    return message


def _events(ws: ClientConnection, until: str, within: float = 60) -> list[dict[str, Any]]:
    """Notifications received until one of type `until` (included)."""
    seen = []
    deadline = time.monotonic() + within
    while True:
        event = json.loads(ws.recv(timeout=max(0.1, deadline - time.monotonic())))
        seen.append(event)
        if event["type"] == until:
            return seen


def _download(stack: LiveStack, token: str, path: str) -> bytes:
    request = urllib.request.Request(
        f"http://127.0.0.1:{stack.port}{path}", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.headers["Content-Type"] == "application/pdf"
        return bytes(response.read())


def _pdf_text(pdf: bytes) -> str:
    from pypdf import PdfReader

    return re.sub(r"\s+", " ", " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages))


def test_an_export_runs_through_the_worker_process_and_is_announced(stack: LiveStack) -> None:
    token = stack.token("alice")
    doc_id = stack.document(token)
    doc, blocks = every_node_type()
    _publish(stack, doc_id, token, doc)
    with connect(f"ws://127.0.0.1:{stack.port}/ws/notifications?token={token}") as notes:
        assert json.loads(notes.recv(timeout=10))["type"] == "hello"
        export = stack.api("POST", f"/docs/{doc_id}/exports", token, {"format": "pdf"})
        assert export["status"] == "pending" and export["at"] == 1
        seen = _events(notes, "export.done")
    done = seen[-1]["export"]
    assert done["id"] == export["id"] and done["status"] == "done"
    assert [e["type"] for e in seen[:-1]] and {e["type"] for e in seen[:-1]} == {"export.progress"}
    text = _pdf_text(_download(stack, token, done["download_url"]))
    at = 0
    for block in blocks:
        at = text.index(block, at) + len(block)
    # A stranger cannot fetch it.
    stranger = stack.token("mallory")
    with pytest.raises(urllib.error.HTTPError) as refused:
        _download(stack, stranger, done["download_url"])
    assert refused.value.code == 404


def test_a_worker_killed_mid_export_still_completes_it_exactly_once(stack: LiveStack) -> None:
    token = stack.token("alice")
    doc_id = stack.document(token)
    _publish(stack, doc_id, token, long_document(40))
    with connect(f"ws://127.0.0.1:{stack.port}/ws/notifications?token={token}") as notes:
        assert json.loads(notes.recv(timeout=10))["type"] == "hello"
        export = stack.api("POST", f"/docs/{doc_id}/exports", token, {})
        # Wait until the PDF step runs, then kill the process running it.
        seen = _events(notes, "export.progress")
        while seen[-1]["export"]["stage"] != "rendering PDF":
            seen += _events(notes, "export.progress")
        pool = stack.worker_pool_pids()
        assert pool, "no worker pool process found"
        for pid in pool:
            os.kill(pid, signal.SIGKILL)
        after = _events(notes, "export.done", within=120)
        # Anything announced late would arrive now.
        time.sleep(3)
        try:
            while True:
                after.append(json.loads(notes.recv(timeout=0.5)))
        except TimeoutError:
            pass
    kinds = [e["type"] for e in after]
    assert kinds.count("export.done") == 1 and "export.failed" not in kinds
    # The step was killed mid-flight: it was delivered again and announced itself again.
    stages = [e["export"]["stage"] for e in after if e["type"] == "export.progress"]
    assert stages[:1] == ["rendering PDF"], stages
    shown = stack.api("GET", f"/exports/{export['id']}", token)
    assert shown["status"] == "done"
    pdf = _download(stack, token, shown["download_url"])
    assert "Section 40" in _pdf_text(pdf)
    files = sorted(p.name for p in (stack.var_dir / "exports").rglob("*.pdf"))
    assert files == [f"{export['id']}.pdf"]
