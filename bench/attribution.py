"""Attribution benchmark: `attribute` and `authored_diff` over the seph-blog1 trace.

    .venv/bin/python bench/attribution.py [--limit N]

The trace (137,154 transactions) is typed by a pycrdt client into a paragraph's XmlText
(`bench/background.py`'s `trace_updates`); the events alternate between two actors in bursts
of 100 so runs and diffs have several authors.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from background import trace_updates  # noqa: E402

from collab.sync.attribution import attribute, authored_diff  # noqa: E402


def main() -> None:
    """Time attribution on the first 10,000 events and on the whole trace."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=int, default=None, help="only this many transactions")
    args = parser.parse_args()
    started = time.perf_counter()
    updates = trace_updates(args.limit)
    print(f"{len(updates):,} updates made in {time.perf_counter() - started:.1f} s")
    events = [(seq, 1 + (seq // 100) % 2, u) for seq, u in enumerate(updates, start=1)]
    for count in sorted({min(10_000, len(events)), len(events)}):
        started = time.perf_counter()
        result = attribute(events[:count])
        took = time.perf_counter() - started
        print(
            f"attribute, {count:,} events: {took:.2f} s ({took / count * 1e6:.0f} us/event); "
            f"{len(result.text):,} characters, {len(result.runs):,} runs"
        )
    started = time.perf_counter()
    changes = authored_diff(events, len(events) // 2, len(events))
    print(
        f"authored_diff, seq {len(events) // 2:,} to {len(events):,}: "
        f"{time.perf_counter() - started:.2f} s, {len(changes):,} changes"
    )


if __name__ == "__main__":
    main()
