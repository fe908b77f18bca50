"""The serve command: daphne's command line on uvloop, the app loaded and its heap frozen."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest
import uvloop
from daphne.cli import CommandLineInterface

from collab import server
from collab.server import main


def test_serves_through_daphne_on_uvloop_with_the_startup_heap_frozen_and_our_size_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[str, Any] = {}

    def run(self: CommandLineInterface, args: list[str]) -> None:
        seen["args"] = args
        seen["policy"] = asyncio.get_event_loop_policy()
        seen["frozen"] = gc.get_freeze_count()

    monkeypatch.setattr(CommandLineInterface, "run", run)
    # The embedded worker needs a database; here it is only checked that it is started.
    monkeypatch.setattr(server, "_start_embedded_background_work", lambda: seen.update(bg=True))
    before = asyncio.get_event_loop_policy()
    try:
        main(["-p", "8001", "collab.asgi:application"])
    finally:
        asyncio.set_event_loop_policy(before)
        gc.unfreeze()
    limit = str(16 * 1024 * 1024)  # PALIMPSEST_MAX_FRAME_BYTES sets both of daphne's limits
    assert seen["args"] == [
        "--websocket-max-frame-size",
        limit,
        "--websocket-max-message-size",
        limit,
        "-p",
        "8001",
        "collab.asgi:application",
    ]
    assert isinstance(seen["policy"], uvloop.EventLoopPolicy)
    assert seen["frozen"] > 10_000
    assert seen["bg"] is True
