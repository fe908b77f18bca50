"""Who is on the other end of a WebSocket: a token, or a browser session from our own origin."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.contrib.auth.models import AnonymousUser

from collab.realtime.tokens import tokens
from collab.selectors import token_lookup

Scope = dict[str, Any]
# The scope key holding the id of the API token a socket authenticated with.
TOKEN_ID = "palimpsest.token_id"


@database_sync_to_async
def _fetch(token: str) -> tuple[Any, int] | None:
    """The token's active user and the token's id, from the database."""
    found = token_lookup(token=token)
    return None if found is None else (found.user, found.pk)


def _origin(scope: Scope) -> str | None:
    """The Origin header of a WebSocket handshake, if any."""
    for name, value in scope.get("headers", []):
        if name == b"origin":
            return bytes(value).decode("latin-1")
    return None


def origin_allowed(origin: str) -> bool:
    """Whether a browser origin is exactly (scheme, host and port) one of ours.

    `null` (sandboxed frames, local files) and every other origin are refused: a page on
    another port or scheme of the same host is another site as far as browsers are concerned.
    """
    return origin.strip().lower() in settings.CSRF_TRUSTED_ORIGINS


class TokenOrSessionAuth:
    """Authenticate by `?token=` or by session cookie; refuse foreign browser origins.

    A cookie rides along with any page's WebSocket, so a session only counts when the Origin is
    ours. A token must be known to whoever sends it, so it needs no Origin (scripts send none).
    """

    def __init__(self, app: Any) -> None:
        self.app = app
        self.session_app = AuthMiddlewareStack(app)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> Any:
        """Attach `scope["user"]` and pass on, or refuse the handshake."""
        origin = _origin(scope)
        if origin is not None and not origin_allowed(origin):
            return await WebsocketDenier()(scope, receive, send)
        token = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [""])[0]
        if token:
            found = await tokens.lookup(token, _fetch, settings.PALIMPSEST_TOKEN_CACHE_SECONDS)
            if found is None:
                return await self.app({**scope, "user": AnonymousUser()}, receive, send)
            # The token, so that revoking it closes the sockets it opened (and admission
            # checks it still exists: the lookup may come from the cache).
            scope = {**scope, "user": found.user, TOKEN_ID: found.token_id}
            return await self.app(scope, receive, send)
        if origin is None:
            return await self.app({**scope, "user": AnonymousUser()}, receive, send)
        return await self.session_app(scope, receive, send)
