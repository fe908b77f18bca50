"""The embedded default: a real Celery worker and beat on threads of the server process.

Without REDIS_URL there is no broker process, so the broker is kombu's in-memory transport,
which only threads of this process can reach (a forked beat or worker would get queues of
its own). Tasks still go through the broker to a worker: nothing runs eagerly.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from celery import bootsteps
from celery.beat import EmbeddedService
from celery.worker import WorkController

from collab.celery import app

logger = logging.getLogger(__name__)


@dataclass
class Embedded:
    """The running worker and beat."""

    worker: WorkController
    beat: Any | None

    def stop(self) -> None:
        """Stop beat, then the worker (tasks in flight finish first), then the renderer."""
        from tasks.render.isolated import shutdown

        if self.beat is not None:
            self.beat.stop()
        self.worker.stop(in_sighandler=False)
        shutdown()


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
        # EmbeddedService defaults to the file-based scheduler; ours is the database's.
        service = EmbeddedService(app, thread=True, scheduler_cls=app.conf.beat_scheduler)
        service.start()
    # Chains queued in a previous run died with its in-memory broker; queue them again.
    from tasks.services import export_resume_unfinished

    resumed = export_resume_unfinished()
    if resumed:
        logger.info("queued %d unfinished exports again", resumed)
    return Embedded(worker=worker, beat=service)


def _wait_until_consuming(worker: WorkController, timeout: float = 30.0) -> None:
    """Block until the worker's consumer has started (its blueprint says RUN)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        blueprint = getattr(getattr(worker, "consumer", None), "blueprint", None)
        if blueprint is not None and blueprint.state == bootsteps.RUN:
            return
        time.sleep(0.02)
    raise RuntimeError("the embedded Celery worker did not start")
