"""A live room: one open document's replica, its local connections and what it has seen."""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from typing import Protocol

from collab.sync.replica import Replica

logger = logging.getLogger(__name__)

# The ASGI scope extension through which our daphne transport (collab/realtime/transport.py)
# learns how much of what it delivered a connection has handled: receive-side backpressure.
FLOW_EXTENSION = "palimpsest.flow"


class ReceiveFlow(Protocol):
    """The transport side of FLOW_EXTENSION."""

    def taken(self, size: int) -> None:
        """A received message of `size` bytes has been handled."""


class Connection(Protocol):
    """What a room needs from a connected client."""

    connection_id: str
    can_write: bool
    user_id: int | None

    async def recheck_access(self, ended_session: str | None = None) -> None:
        """Look up this socket's rights again and apply them (read-only, or closed); a socket
        of `ended_session` (a browser session that logged out) closes."""

    async def send_frame(self, frame: bytes) -> None:
        """Send one binary frame to the client; never raises, and is a no-op once closing."""

    async def close_with(self, code: int, reason: str) -> None:
        """Close the client's socket."""


@dataclass
class SeqTracker:
    """Which seqs of the log this room has applied, to find what it missed."""

    contiguous: int = 0
    ahead: set[int] = field(default_factory=set)

    def mark(self, seq: int) -> bool:
        """Record a seq; False if it was already seen."""
        if seq <= self.contiguous or seq in self.ahead:
            return False
        self.ahead.add(seq)
        while self.contiguous + 1 in self.ahead:
            self.contiguous += 1
            self.ahead.discard(self.contiguous)
        return True


@dataclass(eq=False)
class Room:
    """One document open in this process."""

    document_id: uuid.UUID
    replica: Replica = field(default_factory=Replica)
    members: set[Connection] = field(default_factory=set)
    seqs: SeqTracker = field(default_factory=SeqTracker)
    # Yjs client id → the account that owns it (events.authors), as far as this room has
    # asked: an update creating items under an id another account owns is refused.
    writers: dict[int, int | None] = field(default_factory=dict)
    # Awareness client id → the local connection that speaks for it (others may not).
    awareness_owner: dict[int, Connection] = field(default_factory=dict)
    # Checked awareness updates waiting for the next relay, with the connection that sent each
    # (None: the server's own, such as a departed client's removal).
    awareness_outbox: list[tuple[Connection | None, bytes]] = field(default_factory=list)
    # Updates handed to the log so far, and how many of those have settled (durable or
    # refused); the replica holds them from the start, so answers from it wait for these.
    accepted: int = 0
    settled: int = 0
    settle_waiters: list[tuple[int, asyncio.Future[None]]] = field(default_factory=list)
    ready: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )
    closed: bool = False
    # Set while the replica is rebuilt from the log (it may hold part of a refused update);
    # updates and answers wait for it.
    rebuilding: asyncio.Future[None] | None = None
    # The seq up to which a compaction was last asked for (or the snapshot the room loaded).
    compacted_to: int = 0
    # Event-loop time when the room last became idle (see Hub._unload_if_idle).
    idle_since: float = 0.0

    def accept(self) -> None:
        """Count an update on its way to the log."""
        self.accepted += 1

    def settle(self) -> None:
        """Count an update the log has committed or refused; wake whoever waited for it."""
        self.settled += 1
        if self.settle_waiters:
            waiting = []
            for target, future in self.settle_waiters:
                if target <= self.settled:
                    if not future.done():
                        future.set_result(None)
                else:
                    waiting.append((target, future))
            self.settle_waiters = waiting

    async def all_settled(self) -> None:
        """Wait until every update accepted so far has settled."""
        if self.settled >= self.accepted:
            return
        future = asyncio.get_running_loop().create_future()
        self.settle_waiters.append((self.accepted, future))
        await future

    @property
    def pending(self) -> int:
        """Updates accepted but not settled: the room stays loaded until they are relayed."""
        return self.accepted - self.settled

    @property
    def idle(self) -> bool:
        """No local members and nothing in flight."""
        return not self.members and self.pending == 0

    async def broadcast(self, frame: bytes, *, exclude: Connection | None = None) -> None:
        """Send a frame to every local member but `exclude`, in order."""
        for member in list(self.members):
            if member is not exclude:
                await deliver(member, frame)


def log_ids(document_id: uuid.UUID | None, connection_id: str | None = None) -> dict[str, str]:
    """A realtime log record's `extra`: the document and connection it is about (fields of
    their own in JSON logs)."""
    ids = {"document_id": "" if document_id is None else str(document_id)}
    if connection_id is not None:
        ids["connection_id"] = connection_id
    return ids


async def deliver(member: Connection, frame: bytes) -> None:
    """Send to one member; a failure there never reaches the others, the batch or the room."""
    try:
        await member.send_frame(frame)
    except Exception:
        logger.warning(
            "sending to %s failed",
            member.connection_id,
            exc_info=True,
            extra=log_ids(None, member.connection_id),
        )
