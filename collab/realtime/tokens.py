"""API tokens this process looked up lately: a join burst of one user's tabs and scripts costs
one database lookup, not one each. Short-lived, and dropped on revocation."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from collab.services import token_digest

# Entries this process keeps; past this the cache starts over.
CACHED_MAX = 10_000


@dataclass(frozen=True, slots=True)
class Found:
    """A token that names an active user."""

    user: Any
    token_id: int
    at: float


class TokenCache:
    """Token digest → the user and token id it named when last looked up, for `seconds`.

    Concurrent lookups of one token share a single database query. Whoever admits a socket
    with a cached token still checks that the token exists (collab.realtime.consumer), so a
    revoked token opens nothing even before its entry goes.
    """

    def __init__(self) -> None:
        self._found: dict[str, Found] = {}
        self._pending: dict[str, asyncio.Future[Found | None]] = {}

    async def lookup(
        self,
        token: str,
        fetch: Callable[[str], Awaitable[tuple[Any, int] | None]],
        seconds: float,
    ) -> Found | None:
        """The token's user and id, from the cache or `fetch` (None: no such active token)."""
        key = token_digest(token)
        now = time.monotonic()
        found = self._found.get(key)
        if found is not None and now - found.at < seconds:
            return found
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Found | None] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            row = await fetch(token)
            result = None if row is None else Found(row[0], row[1], time.monotonic())
            if result is not None and seconds > 0:
                if len(self._found) >= CACHED_MAX:
                    self._found.clear()
                self._found[key] = result
            future.set_result(result)
            return result
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: nobody else may be waiting
            raise
        finally:
            del self._pending[key]

    def forget_user(self, user_id: int) -> None:
        """Drop every cached token of a user (a token revoked, the user deactivated)."""
        for key in [k for k, found in self._found.items() if found.user.pk == user_id]:
            del self._found[key]

    def forget_token(self, token_id: int) -> None:
        """Drop one token (found revoked at admission)."""
        for key in [k for k, found in self._found.items() if found.token_id == token_id]:
            del self._found[key]


tokens = TokenCache()
