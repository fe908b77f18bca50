"""A minimal pycrdt-websocket server for the benchmark: no persistence, one room per URL path.

Run: python bench/peers/pycrdt_ws_server.py --host 127.0.0.1 --port 1235
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from urllib.parse import urlsplit

from pycrdt import Channel
from pycrdt.websocket import WebsocketServer, exception_logger
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

MAX_MESSAGE_BYTES = 16 * 1024 * 1024


class WebsocketsChannel(Channel):
    """Adapts a `websockets` server connection to pycrdt's Channel protocol."""

    def __init__(self, connection: ServerConnection) -> None:
        """Wrap `connection`; the room is the request path without its query."""
        self._connection = connection
        assert connection.request is not None
        self._path = urlsplit(connection.request.path).path

    @property
    def path(self) -> str:
        """The room name: the request's path."""
        return self._path

    def __aiter__(self) -> WebsocketsChannel:
        """Iterate over incoming messages."""
        return self

    async def __anext__(self) -> bytes:
        """The next incoming message; stops when the connection closes."""
        try:
            return await self.recv()
        except ConnectionClosed:
            raise StopAsyncIteration() from None

    async def send(self, message: bytes) -> None:
        """Send one binary message, ignoring a connection that already closed."""
        with contextlib.suppress(ConnectionClosed):
            await self._connection.send(message)

    async def recv(self) -> bytes:
        """Receive one binary message."""
        message = await self._connection.recv()
        return message if isinstance(message, bytes) else message.encode()


def parse_args() -> argparse.Namespace:
    """Read the listening address from the command line."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1235)
    return parser.parse_args()


async def run(host: str, port: int) -> None:
    """Serve until SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    # Rooms stay when their last client leaves, like the Node reference server's documents.
    rooms = WebsocketServer(auto_clean_rooms=False, exception_handler=exception_logger)
    async with rooms as room_server:
        room_start = asyncio.Lock()

        async def handle(connection: ServerConnection) -> None:
            """Serve one client connection in its room, starting the room first."""
            channel = WebsocketsChannel(connection)
            # pycrdt-websocket 0.16.5 races when several clients open a new room at once:
            # all but one wait forever on the room's start lock. Start rooms one at a time.
            async with room_start:
                await room_server.get_room(channel.path)
            await room_server.serve(channel)

        async with serve(handle, host, port, compression=None, max_size=MAX_MESSAGE_BYTES):
            print(f"pycrdt-websocket listening on {host}:{port}", flush=True)
            await stop.wait()


if __name__ == "__main__":
    arguments = parse_args()
    asyncio.run(run(arguments.host, arguments.port))
