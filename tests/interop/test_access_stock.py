"""Access changes reach an open stock y-websocket client at once, on one process (SQLite) and
across two processes (PostgreSQL + Redis): the change is made on one, the client is on the
other. Edits before a change land; a demoted client's later edits don't; a removed, revoked or
deactivated client is closed with 4403 and does not reconnect (44xx is final)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.interop.live import LiveServer, NodeClient
from tests.waiting import eventually_sync

PARAGRAPH = ("--shape", "paragraph")


@pytest.fixture(params=["one process", "two processes"])
def servers(
    request: pytest.FixtureRequest, tmp_path: Path, node_available: None
) -> Iterator[tuple[LiveServer, LiveServer]]:
    """Where changes are made, and where the client is connected."""
    if request.param == "one process":
        server = LiveServer(tmp_path).start()
        yield server, server
        server.stop()
        return
    database = request.getfixturevalue("shared_database")
    env = {"DATABASE_URL": database, "REDIS_URL": "redis://127.0.0.1:6379/0"}
    pair = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        pair.append(LiveServer(tmp_path / name, env).start())
    yield pair[0], pair[1]
    for server in pair:
        server.stop()


def _closed_within(client: NodeClient, seconds: float) -> tuple[float, list[int]]:
    """Wait until the client is closed and its provider has given up reconnecting; the seconds
    until the close, and the code of every close it saw."""
    took = eventually_sync(
        lambda: any(e.get("event") == "closed" for e in client.events), seconds, "closed"
    )
    # Reported in the same turn as the terminal close: were the close not final, a reconnect,
    # and its close, would come before this instead.
    eventually_sync(lambda: any(e.get("event") == "gave_up" for e in client.events), 5, "gave up")
    return took, [e["code"] for e in client.events if e.get("event") == "closed"]


def test_access_changes_reach_an_open_stock_client(
    servers: tuple[LiveServer, LiveServer], node_client: Callable[..., NodeClient]
) -> None:
    changes_on, client_on = servers
    owner = changes_on.token("olga")
    names = ("demoted", "removed", "revoked", "deactivated")
    tokens = {name: changes_on.token(name) for name in names}
    doc = changes_on.document(owner, **{name: "editor" for name in names})
    writer = node_client(client_on.ws_url, doc, owner, *PARAGRAPH)
    assert writer.call("wait_synced")["ok"] and writer.call("make_paragraph")["ok"]
    clients = {}
    for name in names:
        clients[name] = node_client(client_on.ws_url, doc, tokens[name], *PARAGRAPH)
        assert clients[name].call("wait_synced")["ok"]
        assert clients[name].call("wait_paragraph")["ok"]
        assert clients[name].call("insert", pos=0, text=f"[{name}]")["ok"]
    texts = [f"[{name}]" for name in names]
    deadline = time.monotonic() + 30
    while not all(t in changes_on.content_text(doc, owner)[1] for t in texts):
        assert time.monotonic() < deadline, "the edits before the changes were not logged"
        time.sleep(0.2)

    timings = {}
    # Demotion: the socket stays, read-only; a later edit is refused and logged nowhere.
    changes_on.api("POST", f"/docs/{doc}/members", owner, {"username": "demoted", "role": "viewer"})
    time.sleep(1)  # the promise is "within a second"
    assert clients["demoted"].call("insert", pos=0, text="[after demotion]")["ok"]
    # Removal, revocation (by the member, of the token the client uses) and deactivation.
    status, _ = changes_on.api_status("DELETE", f"/docs/{doc}/members/removed", owner)
    assert status == 204
    timings["removal"], codes = _closed_within(clients["removed"], 5)
    assert codes == [4403]
    revoked = tokens["revoked"]
    token_id = next(
        t["id"] for t in changes_on.api("GET", "/tokens", revoked) if t["prefix"] == revoked[:8]
    )
    changes_on.api_status("DELETE", f"/tokens/{token_id}", revoked)
    timings["token revocation"], codes = _closed_within(clients["revoked"], 5)
    assert codes == [4403]
    if changes_on is client_on:
        # Embedded (in-memory layer): a shell is another process, which nothing connects to the
        # server's sockets; the admin or the API would be. The integration tests deactivate in
        # the server's own process on both backends.
        clients["deactivated"].close()
        _finish(changes_on, writer, doc, owner, texts, timings)
        return
    changes_on.manage(
        "shell",
        "-v",
        "0",
        "-c",
        "from django.contrib.auth.models import User; "
        "u = User.objects.get(username='deactivated'); u.is_active = False; u.save()",
    )
    # (Timed from when the shell command returned, which is after the save: not a figure.)
    _, codes = _closed_within(clients["deactivated"], 10)
    assert codes == [4403]
    _finish(changes_on, writer, doc, owner, texts, timings)


def _finish(
    server: LiveServer,
    writer: NodeClient,
    doc: str,
    owner: str,
    texts: list[str],
    timings: dict[str, float],
) -> None:
    """The log after the changes: the demoted member's later edit is nowhere."""
    changes_on = server
    assert writer.call("insert", pos=0, text="[owner after]")["ok"]
    deadline = time.monotonic() + 30
    while "[owner after]" not in changes_on.content_text(doc, owner)[1]:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    final = changes_on.content_text(doc, owner)[1]
    assert "[after demotion]" not in final and all(t in final for t in texts)
    assert "[after demotion]" not in writer.text()
    shown = {k: f"{v * 1000:.0f} ms" for k, v in timings.items()}
    print(f"from the API call's return to the client's close: {shown}")
    assert all(seconds < 1.0 for seconds in timings.values()), timings
