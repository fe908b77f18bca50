"""Render PDFs in a child process: a long layout never holds the server's GIL, and one that
overruns its time limit is killed.

In the embedded default the Celery worker is a thread of the server process: measured at
fan-out 20 docs x 5 clients with a 40-page export every 2 s, keystroke p99 went from 3.4 ms
to 57-79 ms while WeasyPrint ran on a thread. A thread also cannot be stopped, so Celery's
thread pool ignores time limits; a child process can be, and is, when a render overruns. A
separate worker process (REDIS_URL) needs no such help: it renders in place under Celery's
own limits.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
from multiprocessing.pool import Pool

from django.conf import settings

from tasks.render.errors import RendererStopped, RenderTimedOut
from tasks.render.pdf import html_to_pdf

_pool: Pool | None = None
_stopped = False
# One render at a time: the limit times this render, not the ones queued before it.
_render = threading.Lock()
_lock = threading.Lock()


def html_to_pdf_isolated(html: str, *, limit_s: float) -> bytes:
    """`html_to_pdf` in a warm child process (started on first use), killed after `limit_s`."""
    with _render:
        pool = _current_pool()
        pending = pool.apply_async(html_to_pdf, (html,))
        deadline = time.monotonic() + limit_s
        # Short waits, so that a stop (which kills the child) is noticed at once.
        while not pending.ready():
            left = deadline - time.monotonic()
            if left <= 0:
                _discard(pool)
                raise RenderTimedOut(f"rendering took longer than {limit_s:g} s, the limit")
            pending.wait(min(left, 0.2))
            if _stopped:
                raise RendererStopped("the server is stopping")
        return pending.get()


def _current_pool() -> Pool:
    """The pool with its warm child; a new one after a kill."""
    global _pool
    with _lock:
        if _stopped:
            raise RendererStopped("the server is stopping")
        if _pool is None:
            # spawn, not fork: forking a process with an event loop and threads is unsafe.
            _pool = multiprocessing.get_context("spawn").Pool(
                # WeasyPrint's caches grow with every document: a child is replaced now and then.
                processes=1,
                maxtasksperchild=settings.CELERY_WORKER_MAX_TASKS_PER_CHILD,
            )
        return _pool


def _discard(pool: Pool) -> None:
    """Kill a pool's child mid-render; the next render starts a fresh one."""
    global _pool
    with _lock:
        if _pool is pool:
            _pool = None
    pool.terminate()


def shutdown() -> None:
    """Kill the child, if one was started; renders from now on raise RendererStopped."""
    global _pool, _stopped
    with _lock:
        pool, _pool = _pool, None
        _stopped = True
    if pool is not None:
        pool.terminate()


def restart() -> None:
    """Allow renders again, once the worker that was stopping has stopped."""
    global _stopped
    with _lock:
        _stopped = False
