"""Interop fixtures: live daphne servers and stock Node clients."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from tests.interop.live import LiveServer, NodeClient

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
def shared_database(postgres_available: None, redis_available: None) -> Iterator[str]:
    """A fresh PostgreSQL database, dropped afterwards."""
    name = f"palimpsest_interop_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield f"postgres://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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
