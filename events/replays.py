"""Full-log replays (attribution, diffs): how many run at once, and their kept results."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings

# Full-log results kept per process (attribution at a seq, a diff between two).
FULL_REPLAY_RESULTS_KEPT = 16

T = TypeVar("T")


class Busy(RuntimeError):
    """As many full-log replays as allowed already run in this process; ask again shortly."""

    retry_after_s = 5


class FullReplays:
    """Caps the full-log replays running at once and keeps their newest results.

    Attribution and diffs replay a document's log from its first event (a snapshot keeps no
    authorship), ~10 s for 137k events: without a cap any reader could hold every worker
    thread. The events up to a seq never change, so a result stays right for good.
    """

    def __init__(self, keep: int) -> None:
        self._lock = threading.Lock()
        self._running = 0
        self._keep = keep
        self._results: OrderedDict[tuple[Any, ...], Any] = OrderedDict()

    def run(self, key: tuple[Any, ...], compute: Callable[[], T]) -> T:
        """The kept result for `key`, or `compute()` in a free slot; Busy when none is free."""
        with self._lock:
            if key in self._results:
                self._results.move_to_end(key)
                result: T = self._results[key]
                return result
            if self._running >= settings.PALIMPSEST_HISTORY_REPLAYS:
                raise Busy("the server is busy replaying document histories; try again shortly")
            self._running += 1
        try:
            result = compute()
        finally:
            with self._lock:
                self._running -= 1
        with self._lock:
            self._results[key] = result
            while len(self._results) > self._keep:
                self._results.popitem(last=False)
        return result


full_replays = FullReplays(FULL_REPLAY_RESULTS_KEPT)
