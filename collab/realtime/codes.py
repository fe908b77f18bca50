"""WebSocket close codes the server sends, in one place (the README lists them).

Servers may only send 1000 or 3000-4999 (RFC 6455 reserves the rest), so ours mirror HTTP
statuses in the application range. y-websocket 3.x stops reconnecting on 4400-4499 (final:
reconnecting would repeat the refusal) and reconnects on anything else (45xx: try again).
"""

from __future__ import annotations

# 1012 (service restart) is not one of ours to send through ASGI (autobahn's sendClose allows
# 1000 and 3000-4999): the transport sends it as a raw close frame when a process drains.
CLOSE_SERVICE_RESTART = 1012  # this process is stopping; reconnect (through the balancer)
CLOSE_PROTOCOL_ERROR = 4400  # a malformed frame or update, or over an awareness/parked bound
CLOSE_ACCESS_REMOVED = 4403  # unshared, token revoked or user deactivated while connected
CLOSE_TOO_BIG = 4413  # a message over PALIMPSEST_MAX_FRAME_BYTES
CLOSE_UNSUPPORTED_DATA = 4415  # a text frame
CLOSE_TOO_MANY_CONNECTIONS = 4429  # over PALIMPSEST_CONNECTIONS_PER_USER
CLOSE_STORE_FAILED = 4500  # the log refused the edit; the client's resync re-sends it
CLOSE_TOO_SLOW = 4508  # the client read too slowly; it reconnects and resyncs
