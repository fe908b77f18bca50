"""A web process stopping (SIGTERM, SIGINT): what it owes the edits it accepted.

While it drains it keeps listening, but `/healthz` answers 503 (the load balancer routes no one
new here), WebSocket handshakes are refused, and frames still arriving are not taken: a client
holds its own edits until a server has them, and sends them again where it reconnects. What
was accepted is appended and relayed; then the transport closes every socket with 1012.
"""

from __future__ import annotations

import time

from collab.realtime.hub import running_hub

_since: float | None = None


def draining() -> bool:
    """Whether this process has begun to stop."""
    return _since is not None


def begin() -> None:
    """Stop taking anything new: handshakes, frames and load-balancer health checks."""
    global _since
    if _since is None:
        _since = time.monotonic()


async def settle() -> None:
    """Wait until every update this process accepted is durable and relayed (or refused)."""
    hub = running_hub()
    if hub is not None:
        await hub.pipeline.drain()
        await hub.presence.drain()
        if hub.bus is not None:
            await hub.bus.drain(within=2.0)
