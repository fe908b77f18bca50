"""Integration fixtures: users, documents, tokens and WebSocket clients on the real ASGI app."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth import get_user_model

from collab.asgi import application
from collab.realtime.hub import current_hub, hub_shutdown
from collab.services import document_create, member_add, token_issue
from tests.ytest import YClient

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _backends(request: pytest.FixtureRequest) -> None:
    """When the Redis + PostgreSQL pass is asked for, make sure that is what runs."""
    if os.environ.get("DATABASE_URL", "").startswith("postgres"):
        request.getfixturevalue("postgres_available")
        assert settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
    if os.environ.get("REDIS_URL"):
        request.getfixturevalue("redis_available")
        assert "Redis" in settings.CHANNEL_LAYERS["default"]["BACKEND"]


@pytest.fixture(autouse=True)
def _plain_static(settings: Any) -> None:
    """Pages link the bundle without the hashed manifest `collectstatic` writes for `make run`.

    The browser tests run `collectstatic` and get the hashed, compressed files.
    """
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture
async def hub() -> AsyncIterator[Any]:
    """This loop's hub, shut down (appends drained, connections closed) after the test."""
    yield current_hub()
    await hub_shutdown()


class Peer:
    """A communicator plus a YClient that applies what the server sends."""

    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.ws = communicator
        self.y = YClient(self.send)
        self.closed: dict[str, Any] | None = None

    async def send(self, frame: bytes) -> None:
        """Send a binary frame."""
        await self.ws.send_to(bytes_data=frame)

    async def pump(self, quiet: float = 0.2) -> int:
        """Apply frames until none arrives for `quiet` seconds; returns how many."""
        count = 0
        while True:
            # receive_nothing waits without cancelling the app, as receive_output's timeout does.
            if await self.ws.receive_nothing(quiet):
                return count
            message = await self.ws.receive_output()
            if message["type"] == "websocket.close":
                self.closed = message
                return count
            if message.get("bytes") is not None:
                await self.y.handle(message["bytes"])
                count += 1

    async def sync(self) -> None:
        """Run the opening handshake both ways."""
        await self.y.start_sync()
        await self.pump()

    async def close(self) -> None:
        """Disconnect."""
        await self.ws.disconnect()


Connect = Callable[..., Coroutine[Any, Any, Peer]]


@pytest.fixture
def connect(hub: Any) -> Connect:
    """Open a synced connection to a document with a token (or raw query/headers)."""

    async def _connect(
        doc_id: Any,
        token: str | None = None,
        *,
        headers: list[tuple[bytes, bytes]] | None = None,
        expect: bool = True,
        sync: bool = True,
    ) -> Peer:
        path = f"/ws/docs/{doc_id}" + (f"?token={token}" if token else "")
        communicator = WebsocketCommunicator(application, path, headers=headers or [])
        connected, _ = await communicator.connect(timeout=5)
        assert connected is expect, f"connect to {path} gave {connected}"
        peer = Peer(communicator)
        if connected and sync:
            await peer.sync()
        return peer

    return _connect


@database_sync_to_async
def make_user(username: str) -> tuple[Any, str]:
    """A user and a fresh API token."""
    user = get_user_model().objects.create_user(username=username, password="pw-" + username)
    return user, token_issue(user=user)


@database_sync_to_async
def make_document(
    owner: Any, *, editors: tuple[Any, ...] = (), viewers: tuple[Any, ...] = ()
) -> Any:
    """A document shared with editors and viewers."""
    document = document_create(owner=owner, title="Test document")
    for user in editors:
        member_add(document=document, by=owner, user=user, role="editor")
    for user in viewers:
        member_add(document=document, by=owner, user=user, role="viewer")
    return document


class Notes:
    """A /ws/notifications socket and the events it received."""

    def __init__(self, ws: WebsocketCommunicator) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []

    async def next(self, kind: str, within: float = 60) -> dict[str, Any]:
        """The next event of a type, keeping the others in `seen`."""
        deadline = time.monotonic() + within
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"no {kind} within {within}s; saw {[e['type'] for e in self.seen]}"
            event = await self.ws.receive_json_from(timeout=left)
            self.seen.append(event)
            if event["type"] == kind:
                return event

    async def watch(self, document_id: Any) -> None:
        """Watch a document's events."""
        await self.ws.send_json_to({"type": "watch", "document": str(document_id)})
        assert (await self.next("watching", 5))["document"] == str(document_id)


@pytest.fixture
async def notes() -> AsyncIterator[Callable[[str], Any]]:
    """Open notification sockets by token; closed after the test."""
    opened: list[WebsocketCommunicator] = []

    async def _open(token: str) -> Notes:
        ws = WebsocketCommunicator(application, f"/ws/notifications?token={token}")
        connected, _ = await ws.connect(timeout=5)
        assert connected
        opened.append(ws)
        hello = await ws.receive_json_from(timeout=5)
        assert hello["type"] == "hello"
        return Notes(ws)

    yield _open
    for ws in opened:
        await ws.disconnect()
