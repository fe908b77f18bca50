"""The serve command: daphne's command line on uvloop, the app loaded and its heap frozen."""

from __future__ import annotations

import asyncio
import gc
import threading
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

    class Background:
        """The embedded worker needs a database; here it is only checked that it is started,
        and stopped once daphne returns (not at exit, when thread pools are joined first)."""

        def stop(self) -> None:
            seen["stopped after daphne"] = "args" in seen

    def start() -> Background:
        seen["bg"] = True
        return Background()

    monkeypatch.setattr(server, "_start_embedded_background_work", start)
    before = asyncio.get_event_loop_policy()
    try:
        main(["-p", "8001", "collab.asgi:application"])
    finally:
        asyncio.set_event_loop_policy(before)
        gc.unfreeze()
    # main() arms no forced exit: only `python -m collab.server` does (armed in a caller, it
    # once ended this very test run early, with status 0).
    assert not [t for t in threading.enumerate() if isinstance(t, threading.Timer)]
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
    assert seen["bg"] is True and seen["stopped after daphne"] is True


@pytest.mark.parametrize(
    ("argv", "debug", "key", "refused"),
    [
        (["-b", "0.0.0.0", "app"], False, None, True),
        (["--bind=192.0.2.7", "app"], False, None, True),
        (["-b", "::", "app"], False, None, True),
        (["-b", "127.0.0.1", "app"], False, None, False),
        (["-b", "localhost", "app"], False, None, False),
        (["-b", "[::1]", "app"], False, None, False),
        (["app"], False, None, False),  # daphne's default is 127.0.0.1
        (["-b", "0.0.0.0", "app"], True, None, False),
        (["-b", "0.0.0.0", "app"], False, "a-real-secret-" + "x" * 40, False),
    ],
)
def test_the_public_development_key_is_refused_on_a_reachable_address(
    settings: Any, argv: list[str], debug: bool, key: str | None, refused: bool
) -> None:
    settings.DEBUG = debug
    settings.SECRET_KEY = key or settings.DEVELOPMENT_SECRET_KEY
    refusal = server.public_key_refusal(argv)
    assert (refusal is not None) is refused
    if refused:
        assert "SECRET_KEY" in str(refusal) and "secrets.token_urlsafe" in str(refusal)


def test_main_exits_before_serving_with_the_public_key(
    settings: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    settings.DEBUG = False
    settings.SECRET_KEY = settings.DEVELOPMENT_SECRET_KEY
    monkeypatch.setattr(server, "_freeze_startup_heap", lambda: pytest.fail("it started"))
    with pytest.raises(SystemExit) as exit_info:
        main(["-b", "0.0.0.0", "-p", "8001", "collab.asgi:application"])
    assert exit_info.value.code == 2
    assert "refusing to serve 0.0.0.0" in capsys.readouterr().err
