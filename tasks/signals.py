"""Every task failure is logged with its id, its arguments without content, and its error, and
kept as a dead letter."""

from __future__ import annotations

import logging
import traceback as tb
from typing import Any

from celery.signals import task_failure

from tasks.services import dead_letter_record, task_args_for_logs

logger = logging.getLogger("tasks.failures")


@task_failure.connect
def on_task_failure(
    sender: Any = None,
    task_id: str | None = None,
    exception: BaseException | None = None,
    args: Any = None,
    kwargs: Any = None,
    einfo: Any = None,
    **_: Any,
) -> None:
    """Log the failure and record it where an admin sees it (sent after the last retry)."""
    name = getattr(sender, "name", repr(sender))
    logger.error(
        "task %s [%s] failed: %r args=%r kwargs=%r",
        name,
        task_id,
        exception,
        task_args_for_logs(list(args or [])),
        task_args_for_logs(dict(kwargs or {})),
    )
    try:
        dead_letter_record(
            task_id=str(task_id),
            task_name=name,
            args=list(args or []),
            kwargs=dict(kwargs or {}),
            exception=f"{type(exception).__name__}: {exception}",
            traceback=str(einfo)
            if einfo is not None
            else "".join(tb.format_exception(exception))
            if exception is not None
            else "",
        )
    except Exception:
        logger.exception("recording the dead letter of task %s failed", task_id)
