"""Serve the app: daphne on uvloop. `python -m collab.server [daphne options] APP`."""

from __future__ import annotations

import asyncio
import gc
import importlib
import ipaddress
import os
import sys
import threading
from typing import TYPE_CHECKING

from django.conf import settings

if TYPE_CHECKING:
    from collab.embedded import Embedded


def main(argv: list[str]) -> None:
    """Make new event loops uvloop ones, then hand the command line to daphne (with our hooks)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "collab.settings")
    refusal = public_key_refusal(argv)
    if refusal is not None:
        print(refusal, file=sys.stderr)
        raise SystemExit(2)
    try:
        import uvloop
    except ImportError:  # platforms without uvloop serve on the stock loop
        pass
    else:
        # daphne creates its loop when daphne.server is first imported, so the policy must be
        # set before that. Measured with fan-out 20 docs x 5 clients: server CPU 57-62% on the
        # stock loop, 38-47% on uvloop (Twisted's per-write add/remove of the socket's writer
        # and the loop itself are C there).
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    _freeze_startup_heap()
    background = _start_embedded_background_work()
    from collab.realtime.transport import CommandLine

    try:
        CommandLine().run(argv)  # returns once daphne has stopped (SIGTERM, SIGINT)
    finally:
        # Here, not in an atexit hook: before those run, the interpreter joins every thread
        # pool's threads, so a render in flight would hold the exit for its whole length.
        if background is not None:
            background.stop()


# Once daphne has stopped and the worker with it, the interpreter joins the thread pools'
# threads; one still waiting on the stopped event loop (a sync view whose request was
# cancelled) would hold the exit for good.
_EXIT_GRACE_SECONDS = 3.0


def _exit_within(seconds: float) -> None:
    """Make sure the process ends within `seconds` from now, whatever threads remain."""

    def force() -> None:
        names = [t.name for t in threading.enumerate() if not t.daemon and t.is_alive()]
        print(f"exit held by threads {names}; exiting now", file=sys.stderr, flush=True)
        os._exit(0)

    timer = threading.Timer(seconds, force)
    timer.daemon = True
    timer.start()


def public_key_refusal(argv: list[str]) -> str | None:
    """Why this server must not start (the public development SECRET_KEY on an address others
    can reach, with DEBUG off), or None."""
    host = _bind_address(argv)
    if settings.DEBUG or settings.SECRET_KEY != settings.DEVELOPMENT_SECRET_KEY:
        return None
    if host == "localhost" or _is_loopback(host):
        return None
    return (
        f"refusing to serve {host} with the public development SECRET_KEY: anyone could forge "
        "sessions and CSRF tokens. Set SECRET_KEY to a long random value, e.g. "
        "`export SECRET_KEY=\"$(python -c 'import secrets; print(secrets.token_urlsafe(50))')\"`"
        ", or bind to 127.0.0.1 for local use."
    )


def _bind_address(argv: list[str]) -> str:
    """The address daphne will bind (-b/--bind; its default is 127.0.0.1)."""
    host = "127.0.0.1"
    for i, arg in enumerate(argv):
        if arg in ("-b", "--bind") and i + 1 < len(argv):
            host = argv[i + 1]
        elif arg.startswith("--bind="):
            host = arg.split("=", 1)[1]
    return host


def _is_loopback(host: str) -> bool:
    """Whether an address is this machine's loopback."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _freeze_startup_heap() -> None:
    """Load the app, then keep what is allocated so far out of the cyclic collector's sight.

    Django, Twisted and the rest leave ~90k objects that live as long as the process, and
    every full collection walked them all on the event loop: measured at fan-out 20 docs x 5
    clients, a 55 ms pause every ~10 s, the largest latency spikes; 14 ms once frozen.
    """
    importlib.import_module("collab.asgi")  # django.setup() and every module the app uses
    gc.collect()
    gc.freeze()


def _start_embedded_background_work() -> Embedded | None:
    """Without Redis, run the Celery worker and beat on threads of this process."""
    if not settings.CELERY_EMBEDDED:
        return None  # `celery -A collab worker` and `celery -A collab beat` run on their own
    from collab import embedded

    return embedded.start()


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    finally:
        # Only as the process's own entry point: a caller of main() (a test) owns its exit.
        _exit_within(_EXIT_GRACE_SECONDS)
