"""Render PDFs in a child process, so a long layout never holds the server's GIL.

In the embedded default the Celery worker is a thread of the server process: measured at
fan-out 20 docs x 5 clients with a 40-page export every 2 s, keystroke p99 went from 3.4 ms
to 57-79 ms while WeasyPrint ran on a thread. A separate worker process (REDIS_URL) needs no
such help and renders in place.
"""

from __future__ import annotations

import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor

from tasks.render.pdf import html_to_pdf

# Renders per child before it is replaced: WeasyPrint's caches grow with every document.
_TASKS_PER_CHILD = 50
_pool: ProcessPoolExecutor | None = None
_lock = threading.Lock()


def html_to_pdf_isolated(html: str) -> bytes:
    """`html_to_pdf` in a warm child process (started on first use)."""
    global _pool
    with _lock:
        if _pool is None:
            # spawn, not fork: forking a process with an event loop and threads is unsafe.
            _pool = ProcessPoolExecutor(
                max_workers=1,
                mp_context=multiprocessing.get_context("spawn"),
                max_tasks_per_child=_TASKS_PER_CHILD,
            )
        pool = _pool
    return pool.submit(html_to_pdf, html).result()


def shutdown() -> None:
    """Stop the child process, if one was started."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=False, cancel_futures=True)
