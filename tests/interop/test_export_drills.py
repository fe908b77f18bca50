"""Exports on the embedded default when the server is stopped mid-render (SIGTERM, as a
deploy or Ctrl-C does): it stops within seconds, and the export goes on after the restart."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from pathlib import Path

from websockets.sync.client import connect

from tests.interop.live import LiveServer, _children, events_until, publish
from tests.richdoc import long_document
from tests.waiting import eventually_sync

# How long a stopping server may take; a render may take minutes (its time limit is 120 s).
STOP_BOUND_S = 10.0


def _running(pid: int) -> bool:
    """Whether a process still runs: an exited one waiting to be reaped (a zombie, whose
    parent here is this machine's init once the server is gone) does not."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _render_children(server: LiveServer) -> list[int]:
    """The server's render child processes, once one is running."""
    assert server.process is not None
    pid = server.process.pid
    eventually_sync(lambda: _children(pid), 20, "a render child process")
    return _children(pid)


def test_sigterm_mid_render_stops_in_bound_and_the_export_resumes(tmp_path: Path) -> None:
    server = LiveServer(tmp_path).start()
    try:
        token = server.token("alice")
        doc_id = server.document(token)
        # About 400 pages: far longer to lay out than the stop bound (3.3 s per 100 here).
        publish(server, doc_id, token, long_document(400))
        notes_url = f"ws://127.0.0.1:{server.port}/ws/notifications?token={token}"
        with connect(notes_url) as notes:
            assert json.loads(notes.recv(timeout=10))["type"] == "hello"
            export = server.api("POST", f"/docs/{doc_id}/exports", token, {})
            seen = events_until(notes, "export.progress")
            while seen[-1]["export"]["stage"] != "rendering PDF":
                seen += events_until(notes, "export.progress")
            children = _render_children(server)
            time.sleep(1.0)  # well into the layout
            assert server.process is not None
            server.process.send_signal(signal.SIGTERM)
            started = time.monotonic()
            try:
                code = server.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                server.process.kill()
                raise
            took = time.monotonic() - started
        print(f"stopped {took:.2f} s after SIGTERM, mid-render (bound {STOP_BOUND_S:g} s)")
        assert took < STOP_BOUND_S
        assert code == 0, server.log.read_text()[-3000:]
        assert not [pid for pid in children if _running(pid)], "orphan renderer"
        server.process = None
        # The only error is Celery's note that the cut-short step went back to the queue.
        errors = {
            line.split(":")[0]
            for line in server.log.read_text().splitlines()
            if re.match(r"[\w.]+(Error|Exception|Reject)\b", line)
        }
        assert errors <= {"tasks.render.errors.RendererStopped", "celery.exceptions.Reject"}, errors

        # The cut-short export is neither failed nor lost: the restarted server renders it.
        server.start()
        with connect(notes_url) as notes:
            assert json.loads(notes.recv(timeout=10))["type"] == "hello"
            shown = server.api("GET", f"/exports/{export['id']}", token)
            assert shown["status"] in ("pending", "running"), shown
            seen = events_until(notes, "export.progress")
            while seen[-1]["export"]["stage"] != "rendering PDF":
                seen += events_until(notes, "export.progress")
            assert {e["export"]["id"] for e in seen} == {export["id"]}
    finally:
        server.stop()
