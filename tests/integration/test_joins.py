"""Joins: handshakes are admitted in batches, and token lookups are cached without letting a
revoked token in."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model

from collab.models import ApiToken
from collab.realtime.tokens import TokenCache
from collab.services import (
    Admission,
    admit_connections,
    document_create,
    member_add,
    token_issue,
    token_revoke,
)
from tests.integration.conftest import Connect, make_document, make_user

pytestmark = pytest.mark.django_db(transaction=True)


def test_admission_checks_each_handshake_in_one_batch(django_assert_max_num_queries: Any) -> None:
    alice, bob, carol = (
        get_user_model().objects.create_user(username=name) for name in ("alice", "bob", "carol")
    )
    token_issue(user=alice)
    document = document_create(owner=alice, title="shared")
    member_add(document=document, by=alice, user=bob, role="viewer")
    token_id = alice.api_tokens.get().pk
    asks = [
        Admission(alice.pk, str(document.id), "c1", token_id),
        Admission(bob.pk, str(document.id), "c2"),
        Admission(carol.pk, str(document.id), "c3"),  # a stranger
        Admission(alice.pk, "not-a-uuid", "c4"),
        Admission(bob.pk, str(document.id), "c5", token_id),  # someone else's token
    ]
    with django_assert_max_num_queries(6):  # 3 reads, then BEGIN, one INSERT, COMMIT
        roles = admit_connections(admissions=asks)
    assert roles == ["owner", "viewer", None, None, None]
    assert set(document.sessions.values_list("connection_id", flat=True)) == {"c1", "c2"}
    alice.api_tokens.all().delete()  # revoked: its next handshake is refused
    bob.is_active = False
    bob.save()
    assert admit_connections(admissions=[asks[0], asks[1]]) == [None, None]


async def test_a_revoked_token_opens_nothing_though_its_lookup_was_cached(
    connect: Connect, settings: Any
) -> None:
    settings.PALIMPSEST_TOKEN_CACHE_SECONDS = 3600
    alice, token = await make_user("alice")
    document = await make_document(alice)
    first = await connect(document.id, token)
    token_id = await database_sync_to_async(ApiToken.objects.values_list("pk", flat=True).get)()
    await database_sync_to_async(token_revoke)(user=alice, token_id=token_id)
    await first.pump()
    assert first.closed is not None and first.closed["code"] == 4403
    # Dropped from the cache when the revocation reached the room; and even if it had not
    # been, admission checks the token itself.
    await connect(document.id, token, expect=False)


async def test_admission_refuses_a_cached_token_that_is_gone(
    connect: Connect, settings: Any
) -> None:
    settings.PALIMPSEST_TOKEN_CACHE_SECONDS = 3600
    alice, token = await make_user("alice")
    document = await make_document(alice)
    peer = await connect(document.id, token)
    await peer.close()
    # Deleted behind the app's back: no revocation message, the cache still has it.
    await database_sync_to_async(ApiToken.objects.all().delete)()
    await connect(document.id, token, expect=False)


async def test_concurrent_lookups_of_one_token_share_one_query() -> None:
    cache = TokenCache()
    calls: list[str] = []
    user = get_user_model()(pk=7, username="u")

    async def fetch(token: str) -> tuple[Any, int] | None:
        calls.append(token)
        return (user, 3) if token == "good" else None

    found = await asyncio.gather(*(cache.lookup("good", fetch, 60) for _ in range(50)))
    assert calls == ["good"] and {f.token_id for f in found if f} == {3}
    assert await cache.lookup("good", fetch, 60) is not None and calls == ["good"]
    assert await cache.lookup("bad", fetch, 60) is None
    assert await cache.lookup("bad", fetch, 60) is None and calls.count("bad") == 2
    cache.forget_user(7)
    assert await cache.lookup("good", fetch, 60) is not None and calls.count("good") == 2
    assert await cache.lookup("good", fetch, 0) is not None and calls.count("good") == 3
