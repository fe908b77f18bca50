"""Two daphne processes sharing Redis and PostgreSQL: clients on either converge."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.interop.live import LiveServer, NodeClient, converged, random_edits_together


@pytest.fixture(params=["pubsub-only", "with-catch-up"])
def two_servers(
    request: pytest.FixtureRequest, tmp_path: Path, shared_database: str, node_available: None
) -> Iterator[tuple[LiveServer, LiveServer]]:
    """Two processes on one database and one Redis, as behind a load balancer.

    "pubsub-only" pushes log catch-up out of reach, so convergence proves the Redis path.
    """
    env = {
        "DATABASE_URL": shared_database,
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "PALIMPSEST_CATCHUP_SECONDS": "3600" if request.param == "pubsub-only" else "1",
    }
    servers = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        servers.append(LiveServer(tmp_path / name, env).start())
    first, second = servers
    yield first, second
    first.stop()
    second.stop()


def test_clients_on_different_processes_converge(
    two_servers: tuple[LiveServer, LiveServer], node_client: Callable[..., NodeClient]
) -> None:
    first, second = two_servers
    tokens = {name: first.token(name) for name in ("ann", "ben", "cat", "dan")}
    doc = first.document(tokens["ann"], ben="editor", cat="editor", dan="editor")
    servers = [first, second, first, second]
    clients = [
        node_client(server.ws_url, doc, token)
        for server, token in zip(servers, tokens.values(), strict=True)
    ]
    for client in clients:
        assert client.call("wait_synced", timeout=30000)["ok"]

    random_edits_together(clients, count=150, delay_ms=2)
    final = converged(clients)
    assert final

    # Both processes logged into one gap-free sequence.
    seqs = first.manage(
        "shell",
        "-v",
        "0",
        "-c",
        "from events.models import Event; "
        f"s = list(Event.objects.filter(document_id='{doc}').values_list('seq', flat=True)); "
        "print(s == list(range(1, len(s) + 1)), len(s))",
    )
    assert seqs.startswith("True"), seqs

    # A late joiner on either process gets the same text.
    for server in (first, second):
        late = node_client(server.ws_url, doc, tokens["ann"])
        assert late.call("wait_synced", timeout=30000)["ok"]
        assert late.text() == final
