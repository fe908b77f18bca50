"""Interop fixtures: live daphne servers and stock Node clients."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.interop.live import LiveServer, NodeClient


@pytest.fixture
def daphne_server(tmp_path: Path, node_available: None) -> Iterator[LiveServer]:
    """A daphne server on the embedded default (SQLite, in-memory layer)."""
    server = LiveServer(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def node_client() -> Iterator[Callable[..., NodeClient]]:
    """Start stock clients; all are closed after the test."""
    clients: list[NodeClient] = []

    def _start(server_url: str, room: str, token: str, *extra: str) -> NodeClient:
        client = NodeClient(server_url, room, token, *extra)
        clients.append(client)
        return client

    yield _start
    for client in clients:
        client.close()
