"""`/metrics`: only for the operators' bearer token, and it reflects what the process does."""

from __future__ import annotations

from typing import Any

import pytest
from channels.db import database_sync_to_async
from django.test import AsyncClient

from tasks.models import Export, ExportStatus
from tests.integration.conftest import Connect, make_document, make_user

pytestmark = pytest.mark.django_db(transaction=True)

TOKEN = "operators-only"


def _sample(body: str, line_start: str) -> float | None:
    """The value of the first sample whose line starts with `line_start`."""
    for line in body.splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return None


async def _scrape(authorization: str | None = None) -> Any:
    headers = {} if authorization is None else {"Authorization": authorization}
    return await AsyncClient().get("/metrics", headers=headers)


async def test_metrics_are_404_without_the_operators_token(settings: Any) -> None:
    settings.PALIMPSEST_METRICS_TOKEN = ""
    assert (await _scrape(f"Bearer {TOKEN}")).status_code == 404, "no token set: off"
    settings.PALIMPSEST_METRICS_TOKEN = TOKEN
    assert (await _scrape()).status_code == 404
    assert (await _scrape("Bearer wrong")).status_code == 404
    assert (await _scrape(f"Basic {TOKEN}")).status_code == 404
    _, user_token = await make_user("alice")
    assert (await _scrape(f"Bearer {user_token}")).status_code == 404, "a user's API token"
    assert (await _scrape(f"Bearer {TOKEN}")).status_code == 200


async def test_metrics_show_rooms_appends_relays_and_exports(
    connect: Connect, settings: Any
) -> None:
    settings.PALIMPSEST_METRICS_TOKEN = TOKEN
    alice, alice_token = await make_user("alice")
    bob, bob_token = await make_user("bob")
    document = await make_document(alice, editors=(bob,))
    await database_sync_to_async(Export.objects.create)(
        document=document, requested_by=alice, at_seq=0, status=ExportStatus.FAILED
    )
    before = (await _scrape(f"Bearer {TOKEN}")).content.decode()
    a = await connect(document.id, alice_token)
    b = await connect(document.id, bob_token)
    for word in ("one ", "two "):
        await a.y.insert(len(str(a.y)), word)
    await b.pump()
    assert str(b.y) == "one two "
    response = await _scrape(f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    body = response.content.decode()
    assert _sample(body, "palimpsest_rooms_open") == 1
    assert _sample(body, "palimpsest_sockets_open") == 2
    assert _sample(body, "palimpsest_append_queue_events") == 0
    count = "palimpsest_append_batch_events_count"
    assert (_sample(body, count) or 0) - (_sample(before, count) or 0) >= 1
    relayed = "palimpsest_relay_seconds_count"
    assert (_sample(body, relayed) or 0) - (_sample(before, relayed) or 0) == 2
    assert _sample(body, 'palimpsest_exports{status="failed"}') == 1
    assert _sample(body, 'palimpsest_exports{status="done"}') == 0
    assert _sample(body, "process_resident_memory_bytes") is not None
    await a.close()
    await b.close()
