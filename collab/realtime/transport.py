"""Daphne and autobahn hooks for what ASGI cannot express: flow control and size limits.

`collab.server` runs daphne with these classes (`make run`, `make stack`, compose and the live
tests all start it), so every WebSocket gets:

- a bounded send side: frames wait in a queue of ours while Twisted's own buffer is full, and a
  reader that stays more than `PALIMPSEST_SEND_BUFFER_BYTES` behind for
  `PALIMPSEST_SLOW_READER_SECONDS` is closed with 4508 and its queue freed (daphne alone
  buffers without limit: one socket that never read grew the server by ~2 GB);
- a bounded receive side: past `PALIMPSEST_RECEIVE_BUFFER_BYTES` not yet taken by the consumer,
  the socket is not read, so TCP pushes back on the sender (daphne's queue is unbounded);
- sends to a socket that is closing are dropped (autobahn raises `Disconnected` for them);
- an incoming message over `PALIMPSEST_MAX_FRAME_BYTES` is answered with a 4413 close frame
  naming the limit, and its payload is discarded as it streams in (autobahn drops TCP, which a
  stock client takes for a network fault and answers by re-sending the same message forever);
- outgoing messages are never refused for size: a document bigger than the limit still opens;
- a graceful drain on SIGTERM or SIGINT (`collab/realtime/drain.py`): handshakes are refused
  with 503, what was accepted is appended and relayed, then every socket is closed with 1012
  (which ASGI cannot send) so its client reconnects elsewhere, all within
  `PALIMPSEST_DRAIN_SECONDS`.

The consumer reports what it has taken through the ASGI scope extension `FLOW_EXTENSION`; under
other servers (tests' `WebsocketCommunicator`) it is absent and nothing here applies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any

from autobahn.websocket import protocol as autobahn_protocol
from autobahn.websocket.types import ConnectionDeny
from daphne.cli import CommandLineInterface
from daphne.server import Server
from daphne.ws_protocol import WebSocketProtocol
from django.conf import settings
from twisted.internet import defer
from twisted.internet import reactor as _reactor
from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from collab.metrics import CLOSES
from collab.realtime import drain
from collab.realtime.codes import CLOSE_SERVICE_RESTART, CLOSE_TOO_BIG, CLOSE_TOO_SLOW
from collab.realtime.hub import hub_shutdown
from collab.realtime.rooms import FLOW_EXTENSION

logger = logging.getLogger(__name__)

# autobahn pretty-prints every new socket's ~30 settings for a debug log line whether or not
# debug is on (protocol.py, `_connectionMade`): 6-11% of the event loop in a join burst of
# 2,000 sockets. Its other uses are debug output too; repr says the same, at a fraction.
autobahn_protocol.pformat = repr  # type: ignore[assignment]
# The installed reactor (daphne's asyncio one); Twisted types it as a module.
reactor: Any = _reactor


@implementer(IPushProducer)
class _SendWindow:
    """Told by Twisted when its send buffer for the socket fills (pause) and empties (resume)."""

    def __init__(self, protocol: FlowControlledProtocol) -> None:
        self._protocol = protocol
        self.paused = False

    def pauseProducing(self) -> None:
        """Twisted's buffer is over its 64 KiB: queue further frames ourselves."""
        self.paused = True

    def resumeProducing(self) -> None:
        """Twisted's buffer drained: hand it queued frames."""
        self.paused = False
        self._protocol.flush_queued()

    def stopProducing(self) -> None:
        """The connection is gone."""
        self.paused = True


class FlowControlledProtocol(WebSocketProtocol):
    """daphne's WebSocket protocol with bounded buffers both ways and a clean size refusal."""

    def connectionMade(self) -> None:
        """Set up the queues and register for Twisted's buffer signals."""
        super().connectionMade()
        self._queued: deque[tuple[bytes, bool]] = deque()  # (message, is it binary)
        self.queued_bytes = 0
        self._behind_since: float | None = None
        self.gave_up = False
        self.received_bytes = 0
        # Why the socket is not read now: "received" (the consumer is behind) and/or "sending"
        # (its reader is behind: what it asks next would only queue more).
        self._read_blockers: set[str] = set()
        self._backlog_check: Any = None  # the pending DelayedCall of the slow-reader clock
        self._ever_paused = False  # logged once per connection, not at every pause
        self._window = _SendWindow(self)
        # The HTTP channel that handled the upgrade is still the transport's producer; this
        # socket speaks WebSocket from now on, so its buffer signals come here instead.
        if getattr(self.transport, "producer", None) is not None:
            self.transport.unregisterProducer()
        self.transport.registerProducer(self._window, True)

    def onConnect(self, request: Any) -> Any:
        """Refuse new sockets while the process drains: the client tries again elsewhere."""
        if drain.draining():
            raise ConnectionDeny(503, "server restarting")
        return super().onConnect(request)

    def close_for_restart(self) -> None:
        """Close with 1012 (service restart): the client reconnects, through the balancer."""
        if self.state != self.STATE_OPEN:
            return
        self.gave_up = True
        self._queued.clear()
        self.queued_bytes = 0
        # A raw close frame, as daphne sends 1011: autobahn's sendClose refuses 1012.
        CLOSES.labels(CLOSE_SERVICE_RESTART).inc()
        self.sendCloseFrame(
            code=CLOSE_SERVICE_RESTART, reasonUtf8=b"server restarting", isReply=False
        )

    # -- sending -----------------------------------------------------------------------------

    def handle_reply(self, message: dict[str, Any]) -> None:
        """As daphne, but a close carries the application's reason (daphne drops it), and
        1012 (which autobahn's sendClose refuses) goes out as a raw close frame."""
        if message.get("type") == "websocket.close" and self.state == self.STATE_OPEN:
            if message.get("code") == CLOSE_SERVICE_RESTART:
                self.close_for_restart()
                return
            self.gave_up = True
            self._queued.clear()
            self.queued_bytes = 0
            code = message.get("code") or 1000
            CLOSES.labels(code).inc()
            self.sendClose(code=code, reason=message.get("reason") or None)
            return
        super().handle_reply(message)

    def serverSend(self, content: bytes | str, binary: bool = False) -> None:
        """Send now if Twisted's buffer has room, else queue; drop once the socket is closing."""
        if self.state == self.STATE_CONNECTING:
            super().serverSend(content, binary)
            return
        if self.state != self.STATE_OPEN or self.gave_up:
            return  # closing: the client gets nothing more (autobahn would raise Disconnected)
        # daphne hands bytes for binary messages and str for text ones.
        data = content.encode("utf-8") if isinstance(content, str) else content
        if self._window.paused or self._queued:
            self._queued.append((data, binary))
            self.queued_bytes += len(data)
            self._watch_backlog()
            return
        self._send_now(data, binary)

    def _send_now(self, data: bytes, binary: bool) -> None:
        """Hand one message (binary, or UTF-8 text) to autobahn, whatever its size."""
        limit: int = getattr(self, "maxMessagePayloadSize", 0)
        # autobahn applies the incoming limit to sends too; ours is only for what clients send.
        self.maxMessagePayloadSize = 0
        try:
            self.sendMessage(data, binary)
        finally:
            self.maxMessagePayloadSize = limit

    def flush_queued(self) -> None:
        """Send queued frames until Twisted's buffer fills again."""
        while self._queued and not self._window.paused and self.state == self.STATE_OPEN:
            data, binary = self._queued.popleft()
            self.queued_bytes -= len(data)
            self._send_now(data, binary)
        if self.queued_bytes <= settings.PALIMPSEST_SEND_BUFFER_BYTES:
            self._behind_since = None
            self._unblock_reading("sending")

    def _watch_backlog(self) -> None:
        """Over the bound: stop reading (what it asks would only queue more), start the
        slow-reader clock; far over it (four times): close at once."""
        bound = settings.PALIMPSEST_SEND_BUFFER_BYTES
        if self.queued_bytes <= bound:
            return
        if self.queued_bytes > 4 * bound:
            self._give_up("far over the send bound")
            return
        self._block_reading("sending")
        if self._behind_since is None:
            self._behind_since = reactor.seconds()
        if self._backlog_check is None or not self._backlog_check.active():
            self._backlog_check = reactor.callLater(
                settings.PALIMPSEST_SLOW_READER_SECONDS, self._check_backlog
            )

    def _check_backlog(self) -> None:
        """Close a reader that stayed over the bound for the whole grace period."""
        self._backlog_check = None
        if self._behind_since is None or self.state != self.STATE_OPEN:
            return
        left = self._behind_since + settings.PALIMPSEST_SLOW_READER_SECONDS - reactor.seconds()
        if left > 0.001:  # it dipped under and went over again since the clock started
            self._backlog_check = reactor.callLater(left, self._check_backlog)
            return
        self._give_up(f"unread for {settings.PALIMPSEST_SLOW_READER_SECONDS:.0f} s")

    def _give_up(self, why: str) -> None:
        """Close a reader that cannot keep up with 4508 and free what was queued for it."""
        logger.info("closing %s: %d bytes queued, %s", self.client_addr, self.queued_bytes, why)
        self.gave_up = True
        self._queued.clear()
        self.queued_bytes = 0
        self._behind_since = None
        # Behind at most Twisted's 64 KiB and one message; a client that never reads is dropped
        # by autobahn's close-handshake timeout, which frees the rest.
        CLOSES.labels(CLOSE_TOO_SLOW).inc()
        self.sendClose(code=CLOSE_TOO_SLOW, reason="could not keep up")

    def _block_reading(self, reason: str) -> None:
        """Stop reading the socket (TCP then pushes back on the client) for `reason`."""
        if not self._read_blockers:
            self.transport.pauseProducing()
        self._read_blockers.add(reason)

    def _unblock_reading(self, reason: str) -> None:
        """`reason` no longer holds; read again once no other does."""
        if reason not in self._read_blockers:
            return
        self._read_blockers.discard(reason)
        if not self._read_blockers and self.state in (self.STATE_OPEN, self.STATE_CLOSING):
            self.transport.resumeProducing()

    # -- receiving ---------------------------------------------------------------------------

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        """Queue the message for the consumer; stop reading while too much waits there."""
        if self.muted:
            return
        super().onMessage(payload, isBinary)
        self.received_bytes += len(payload)
        if self.received_bytes > settings.PALIMPSEST_RECEIVE_BUFFER_BYTES:
            if not self._ever_paused:
                logger.info(
                    "pausing reads from %s: it sends faster than it is served", self.client_addr
                )
                self._ever_paused = True
            self._block_reading("received")

    def taken(self, size: int) -> None:
        """The consumer is done with a message of `size` bytes; read again once room is back."""
        self.received_bytes -= size
        if self.received_bytes <= settings.PALIMPSEST_RECEIVE_BUFFER_BYTES // 2:
            self._unblock_reading("received")

    def _max_message_size_exceeded(self, msg_size: int, max_msg_size: int, reason: str) -> None:
        """Refuse an oversized message with 4413 instead of autobahn's dropped connection."""
        logger.info("closing %s: %s", self.client_addr, reason)
        # Marked as failed, autobahn discards the rest of this message as it arrives and still
        # reads the client's close reply, which comes after it: give a slow uplink the time to
        # send the rest (at 256 KiB/s, one minute at most) before the connection is dropped.
        self.closeHandshakeTimeout = min(60.0, max(1.0, msg_size / (256 * 1024)))
        self.failedByMe = True
        self.gave_up = True
        self._queued.clear()
        self.queued_bytes = 0
        CLOSES.labels(CLOSE_TOO_BIG).inc()
        self.sendCloseFrame(
            code=CLOSE_TOO_BIG,
            reasonUtf8=f"message too large: the limit is {max_msg_size} bytes".encode(),
            isReply=False,
        )


class FlowControlledServer(Server):
    """daphne's server, building `FlowControlledProtocol` sockets that report to consumers."""

    _ws_factory: Any = None

    @property
    def ws_factory(self) -> Any:
        """The WebSocket factory daphne builds in `run()`."""
        return self._ws_factory

    @ws_factory.setter
    def ws_factory(self, factory: Any) -> None:
        # daphne creates its factory inside run(); swapping the class here keeps its options.
        factory.protocol = FlowControlledProtocol
        self._ws_factory = factory

    def run(self) -> None:
        """Listen with a deep accept queue: Twisted's default backlog is 50, and a join burst
        past it loses SYNs, which clients resend only after 1, 3, 7, 15... seconds (measured:
        2,000 stock clients took 113 s to sync, 1,000 took 3 s)."""
        backlog = settings.PALIMPSEST_LISTEN_BACKLOG
        endpoints: list[str] = getattr(self, "endpoints", [])  # daphne sets it, untyped
        self.endpoints = [
            f"{e}:backlog={backlog}" if e.startswith("tcp:") and ":backlog=" not in e else e
            for e in endpoints
        ]
        super().run()

    def listen_success(self, port: Any) -> None:
        """Keep the listening port, so a drain can stop listening once its sockets are done."""
        if not hasattr(self, "_ports"):
            self._ports: list[Any] = []
        self._ports.append(port)
        super().listen_success(port)

    def kill_all_applications(self) -> Any:
        """On the way down (daphne's "before shutdown" trigger): drain, then what daphne does."""
        drained = defer.Deferred.fromFuture(asyncio.ensure_future(self._drain()))
        drained.addErrback(lambda failure: logger.error("draining failed: %s", failure.value))
        drained.addCallback(lambda _: super(FlowControlledServer, self).kill_all_applications())
        # Last, once no application is left to use it: the hub's writer connection and tasks.
        drained.addCallback(lambda _: defer.Deferred.fromFuture(asyncio.ensure_future(_release())))
        return drained

    async def _drain(self) -> None:
        """Refuse newcomers, settle what was accepted, close every socket with 1012, and wait
        (all within PALIMPSEST_DRAIN_SECONDS) for applications to finish."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        # A second left for what follows: daphne's cancel, the embedded worker's stop.
        deadline = loop.time() + max(1.0, settings.PALIMPSEST_DRAIN_SECONDS - 1.0)
        drain.begin()
        sockets = [p for p in self.connections if isinstance(p, FlowControlledProtocol)]
        logger.info("draining: %d sockets open", len(sockets))
        try:
            # Half the time for appends; the rest for the closing handshakes.
            settle_for = max(0.1, (deadline - loop.time()) / 2)
            await asyncio.wait_for(drain.settle(), settle_for)
        except TimeoutError:
            logger.error("draining: accepted updates still not durable; closing anyway")
        for protocol in list(self.connections):
            if isinstance(protocol, FlowControlledProtocol):
                protocol.close_for_restart()
        # Sockets end when their clients answer the close; requests when they are answered.
        await self._wait_applications(deadline)
        # No one new from here (the load balancer has had the 503s), so no request is cut off
        # by daphne's cancel: a sync view cancelled mid-way would hold a thread at exit.
        for port in getattr(self, "_ports", []):
            with contextlib.suppress(Exception):
                await defer.maybeDeferred(port.stopListening).asFuture(loop)
        await self._wait_applications(deadline)
        logger.info("drained in %.2f s", loop.time() - started)

    async def _wait_applications(self, deadline: float) -> None:
        """Wait (until `deadline`, loop time) for every application instance to finish."""
        loop = asyncio.get_running_loop()
        running = [
            details["application_instance"]
            for details in self.connections.values()
            if "application_instance" in details and not details["application_instance"].done()
        ]
        if running:
            await asyncio.wait(running, timeout=max(0.0, deadline - loop.time()))

    def create_application(self, protocol: Any, scope: dict[str, Any]) -> Any:
        """Give WebSocket consumers a handle to report the messages they have taken."""
        if isinstance(protocol, FlowControlledProtocol):
            scope.setdefault("extensions", {})[FLOW_EXTENSION] = protocol
        return super().create_application(protocol, scope)


async def _release() -> None:
    """Shut the hub down (briefly: what it had to append is appended by now)."""
    try:
        await asyncio.wait_for(hub_shutdown(), 1.0)
    except Exception:
        logger.exception("shutting the hub down failed")


class CommandLine(CommandLineInterface):
    """daphne's command line with the server above and our size limit as its default."""

    server_class = FlowControlledServer

    def run(self, args: list[str]) -> None:
        """Default both of daphne's size options to `PALIMPSEST_MAX_FRAME_BYTES`."""
        limit = str(settings.PALIMPSEST_MAX_FRAME_BYTES)
        for option in ("--websocket-max-message-size", "--websocket-max-frame-size"):
            if not any(a == option or a.startswith(option + "=") for a in args):
                args = [option, limit, *args]
        super().run(args)
