"""The embedded default: a real Celery worker and beat on threads of the server process.

Without REDIS_URL there is no broker process, so the broker is kombu's in-memory transport,
which only threads of this process can reach (a forked beat or worker would get queues of
its own). Tasks still go through the broker to a worker: nothing runs eagerly.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from dataclasses import dataclass

from celery import bootsteps
from celery.beat import Service
from celery.worker import WorkController
from django.db import connections

from collab.celery import app

logger = logging.getLogger(__name__)


@dataclass
class Embedded:
    """The running worker and beat."""

    worker: WorkController
    beat: _Beat | None

    def stop(self) -> None:
        """Ask beat to stop, kill the renderer, stop the worker (tasks in flight finish first),
        then wait for beat.

        The renderer goes before the worker: a render may take up to its time limit (minutes),
        and the server must stop within seconds. The cut-short export is queued again at the
        next start.
        """
        if self.beat is not None:
            self.beat.ask_to_stop()  # it ends its current sleep meanwhile
        # Only a renderer that was imported needs stopping (importing WeasyPrint at exit to
        # stop nothing would only slow the exit down).
        isolated = sys.modules.get("tasks.render.isolated")
        if isolated is not None:
            isolated.shutdown()
        self.worker.stop(in_sighandler=False)
        if isolated is not None:
            isolated.restart()  # renders refused only while the worker stopped
        if self.beat is not None:
            self.beat.join(timeout=10)


def start(*, beat: bool = True, concurrency: int = 2) -> Embedded:
    """Start the worker (and beat) on daemon threads; returns once the worker consumes."""
    worker = WorkController(
        app=app,
        hostname="embedded@palimpsest",
        # Threads: the in-memory broker is not shared with child processes.
        pool="threads",
        concurrency=concurrency,
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
        # The server's own logging stays as Django configured it.
        loglevel=logging.INFO,
    )
    thread = threading.Thread(target=worker.start, name="celery-worker", daemon=True)
    thread.start()
    _wait_until_consuming(worker)
    service = None
    if beat:
        service = _Beat()
        service.start()
    # Chains queued in a previous run died with its in-memory broker; queue them again.
    from tasks.services import export_resume_unfinished

    resumed = export_resume_unfinished()
    if resumed:
        logger.info("queued %d unfinished exports again", resumed)
    return Embedded(worker=worker, beat=service)


class _Beat(threading.Thread):
    """Beat on a daemon thread that closes its database connection when it ends."""

    def __init__(self) -> None:
        super().__init__(name="celery-beat", daemon=True)
        # Celery's EmbeddedService would pick the file-based scheduler; ours is the database's.
        # A tick every second at most (a query of the schedule's change marker): stopping waits
        # for the current tick's sleep, and the server should stop within seconds.
        self.service = Service(app, scheduler_cls=app.conf.beat_scheduler, max_interval=1)

    def run(self) -> None:
        """Run the scheduler until stopped."""
        app.set_current()
        try:
            self.service.start()
        finally:
            # django-celery-beat's scheduler opened this thread's connection; left open, it
            # outlives the thread (and PostgreSQL then refuses to drop a test database).
            connections.close_all()

    def ask_to_stop(self) -> None:
        """Tell the scheduler to stop after its current tick; `join` waits for the thread."""
        self.service.stop(wait=False)


def _wait_until_consuming(worker: WorkController, timeout: float = 30.0) -> None:
    """Block until the worker's consumer has started (its blueprint says RUN)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        blueprint = getattr(getattr(worker, "consumer", None), "blueprint", None)
        if blueprint is not None and blueprint.state == bootsteps.RUN:
            return
        time.sleep(0.02)
    raise RuntimeError("the embedded Celery worker did not start")
