"""The serve command: daphne's command line on uvloop."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import uvloop
from daphne.cli import CommandLineInterface

from collab.server import main


def test_serves_through_daphne_on_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def run(self: CommandLineInterface, args: list[str]) -> None:
        seen["args"] = args
        seen["policy"] = asyncio.get_event_loop_policy()

    monkeypatch.setattr(CommandLineInterface, "run", run)
    before = asyncio.get_event_loop_policy()
    try:
        main(["-p", "8001", "collab.asgi:application"])
    finally:
        asyncio.set_event_loop_policy(before)
    assert seen["args"] == ["-p", "8001", "collab.asgi:application"]
    assert isinstance(seen["policy"], uvloop.EventLoopPolicy)
