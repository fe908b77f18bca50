"""Stock `yjs` + `y-websocket` clients from npm against a real daphne server process."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.interop.live import (
    CLIENTS,
    TRACES,
    LiveServer,
    NodeClient,
    converged,
    random_edits_together,
)

StartClient = Callable[..., NodeClient]


def _synced(client: NodeClient) -> NodeClient:
    reply = client.call("wait_synced", timeout=30000)
    assert reply["ok"], reply
    return client


def _three_editors(
    server: LiveServer, start: StartClient
) -> tuple[dict[str, str], str, list[NodeClient]]:
    """Tokens of three editors, a document they share, and their synced clients."""
    tokens = {name: server.token(name) for name in ("ann", "ben", "cat")}
    doc = server.document(tokens["ann"], ben="editor", cat="editor")
    return tokens, doc, [_synced(start(server.ws_url, doc, t)) for t in tokens.values()]


def test_three_clients_edit_concurrently_and_converge(
    daphne_server: LiveServer, node_client: StartClient
) -> None:
    tokens, doc, clients = _three_editors(daphne_server, node_client)
    random_edits_together(clients, count=300, delay_ms=1)
    final = converged(clients)
    assert final, "the clients typed nothing"

    # The log alone rebuilds the same document.
    daphne_server.stop()
    daphne_server.start()
    fresh = _synced(node_client(daphne_server.ws_url, doc, tokens["ann"]))
    assert fresh.text() == final


def test_every_concurrent_update_is_one_event(
    daphne_server: LiveServer, node_client: StartClient
) -> None:
    _, doc, clients = _three_editors(daphne_server, node_client)

    def type_into(client: NodeClient) -> None:
        for i in range(150):
            assert client.call("insert", pos=0, text=f"{i % 10}")["ok"]

    with ThreadPoolExecutor(3) as pool:
        list(pool.map(type_into, clients))
    final = converged(clients)
    assert len(final) == 450
    # Inserts always carry something new: each transaction is exactly one logged event.
    assert daphne_server.event_count(doc) == 450


def test_restart_keeps_the_document(daphne_server: LiveServer, node_client: StartClient) -> None:
    token = daphne_server.token("ann")
    doc = daphne_server.document(token)
    writer = _synced(node_client(daphne_server.ws_url, doc, token))
    writer.call("insert", pos=0, text="Survives a restart: ünïcödé 😀")
    writer.call("delete", pos=0, len=2)
    expected = writer.text()
    # Wait until the server has it logged before stopping.
    reader = _synced(node_client(daphne_server.ws_url, doc, token))
    assert reader.call("wait_text", equals=expected, timeout=10000)["ok"]
    writer.close()
    reader.close()

    daphne_server.stop()
    daphne_server.start()
    fresh = _synced(node_client(daphne_server.ws_url, doc, token))
    assert fresh.text() == expected


def test_viewer_and_stranger_with_stock_clients(
    daphne_server: LiveServer, node_client: StartClient
) -> None:
    owner = daphne_server.token("ann")
    viewer_token = daphne_server.token("vic")
    stranger_token = daphne_server.token("eve")
    doc = daphne_server.document(owner, vic="viewer")
    editor = _synced(node_client(daphne_server.ws_url, doc, owner))
    viewer = _synced(node_client(daphne_server.ws_url, doc, viewer_token))
    editor.call("insert", pos=0, text="official")
    assert viewer.call("wait_text", equals="official", timeout=10000)["ok"]
    viewer.call("insert", pos=0, text="defaced ")
    assert not editor.call("wait_text", equals="defaced official", timeout=2000)["ok"]
    assert editor.text() == "official"
    assert daphne_server.event_count(doc) == 1

    stranger = node_client(daphne_server.ws_url, doc, stranger_token, "--no-reconnect")
    assert not stranger.call("wait_synced", timeout=10000)["ok"]
    assert stranger.text() == ""


@pytest.mark.timeout(600)
def test_seph_blog1_replay_reaches_a_second_client_and_the_log(daphne_server: LiveServer) -> None:
    token = daphne_server.token("seph")
    doc = daphne_server.document(token)
    trace = TRACES / "seph-blog1.json.gz"
    out = subprocess.run(
        [
            "node",
            str(CLIENTS / "replay.mjs"),
            "--url",
            daphne_server.ws_url,
            "--room",
            doc,
            f"--token={token}",
            "--trace",
            str(trace),
        ],
        cwd=CLIENTS,
        capture_output=True,
        text=True,
        timeout=540,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["reader_matches"] is True, result
    assert result["txns"] == 137_154
    assert daphne_server.event_count(doc) == 137_154
    print(f"seph-blog1 through daphne: {result}")
