"""Whole-document answers, at most one per interval per connection, the rest merged.

A SyncStep1 from a state vector far behind, or a query for everyone's awareness, is answered
with much of the document. A client that asks in a loop (3,000 SyncStep1s on a 700k-character
document, measured) would make the server build and queue the whole document each time. So a
connection gets one such answer of each kind per interval; requests in between are merged into
the next answer, never dropped: the browser app counts SyncStep1 answers as "saved".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

logger = logging.getLogger(__name__)

AnswerStep1 = Callable[[bytes], Awaitable[None]]
AnswerAwareness = Callable[[], Awaitable[None]]


class FullStateAnswers:
    """Paces one connection's whole-document answers."""

    def __init__(
        self, *, interval: float, answer_step1: AnswerStep1, answer_awareness: AnswerAwareness
    ) -> None:
        self._interval = interval
        self._answer_step1 = answer_step1
        self._answer_awareness = answer_awareness
        # Loop time from which the next answer of each kind may go.
        self._next_step1 = 0.0
        self._next_awareness = 0.0
        # A connection's state vector only grows, so the first waiting one is the lowest: an
        # answer to it covers every request merged after it.
        self._waiting_step1: bytes | None = None
        self._waiting_awareness = False
        self._task: asyncio.Task[None] | None = None

    async def step1(self, state_vector: bytes) -> None:
        """Answer a far-behind SyncStep1 now if the interval allows, else with the next one."""
        now = asyncio.get_running_loop().time()
        if self._waiting_step1 is None and now >= self._next_step1:
            self._next_step1 = now + self._interval
            await self._answer_step1(state_vector)
            return
        if self._waiting_step1 is None:
            self._waiting_step1 = state_vector
        self._schedule()

    async def awareness(self) -> None:
        """Answer a query for awareness now if the interval allows, else with the next one."""
        now = asyncio.get_running_loop().time()
        if not self._waiting_awareness and now >= self._next_awareness:
            self._next_awareness = now + self._interval
            await self._answer_awareness()
            return
        self._waiting_awareness = True
        self._schedule()

    def _schedule(self) -> None:
        """Make sure a task will send what waits."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._send_waiting())

    async def _send_waiting(self) -> None:
        """Send each waiting answer when its interval allows, until nothing waits."""
        loop = asyncio.get_running_loop()
        try:
            while self._waiting_step1 is not None or self._waiting_awareness:
                due = [
                    at
                    for at, waiting in (
                        (self._next_step1, self._waiting_step1 is not None),
                        (self._next_awareness, self._waiting_awareness),
                    )
                    if waiting
                ]
                await asyncio.sleep(max(0.0, min(due) - loop.time()))
                now = loop.time()
                if self._waiting_step1 is not None and now >= self._next_step1:
                    state_vector, self._waiting_step1 = self._waiting_step1, None
                    self._next_step1 = now + self._interval
                    await self._answer_step1(state_vector)
                if self._waiting_awareness and now >= self._next_awareness:
                    self._waiting_awareness = False
                    self._next_awareness = now + self._interval
                    await self._answer_awareness()
        except Exception:
            logger.warning("a delayed answer failed", exc_info=True)

    def cancel(self) -> None:
        """The connection is gone: nothing more will be sent."""
        if self._task is not None:
            self._task.cancel()
