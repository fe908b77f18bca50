"""Live titles: a rename reaches every open page of the document as `document.renamed`."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import AsyncClient

from tests.integration.conftest import make_document, make_user

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_rename_reaches_the_documents_watchers_only(notes: Any, hub: Any) -> None:
    alice, alice_token = await make_user("alice")
    vi, vi_token = await make_user("vi")
    _, eve_token = await make_user("eve")
    document = await make_document(alice, viewers=(vi,))
    other = await make_document(alice)
    watcher, elsewhere = await notes(vi_token), await notes(alice_token)
    await watcher.watch(document.id)
    await elsewhere.watch(other.id)
    stranger = await notes(eve_token)
    await stranger.ws.send_json_to({"type": "watch", "document": str(document.id)})
    assert (await stranger.next("error", 5))["detail"] == "no such document"

    response = await AsyncClient().patch(
        f"/api/docs/{document.id}",
        {"title": "Road trip"},
        content_type="application/json",
        headers={"Authorization": f"Bearer {alice_token}"},
    )
    assert response.status_code == 200
    renamed = await watcher.next("document.renamed", 5)
    assert renamed == {
        "type": "document.renamed",
        "document": str(document.id),
        "title": "Road trip",
        "by": "alice",
    }
    assert await elsewhere.ws.receive_nothing(0.3)
    assert await stranger.ws.receive_nothing(0.1)
