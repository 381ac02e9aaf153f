"""The producer pacer: replay rows onto Redis Streams at a fixed rate, open loop.

Event i is due at t0 + i/rate; each wake-up sends everything due in one pipeline, so a producer
that fell behind catches up in batches and never sleeps while behind (a closed loop would hide its
own slowness as a lower rate). A scenario supplies how a slice of its rows becomes `XADD`s
(`queue(pipe, start, end, stamp)`); the pacer owns the clock, the pipelines and the progress line.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

MAX_PIPELINE = 2000  # most XADDs in one round trip
TICK_S = 0.005  # longest sleep while ahead of schedule
REPORT_S = 1.0

Queue = Callable[[Any, int, int, datetime], None]


def pace(client: Any, *, rows: int, rate: float, duration: float | None, queue: Queue,
         progress: bool = True) -> dict[str, Any]:
    """Send rows [0, rows) at `rate` per second through `queue`; stop after `duration` s if set.

    `queue(pipe, start, end, stamp)` adds the XADDs of rows [start, end) to `pipe`; `stamp` is the
    send time (live-looking events). Returns `{"sent", "seconds", "achieved_rate"}`.
    """
    if not rate > 0:
        raise ValueError(f"rate must be positive, got {rate}")
    unpaced = math.isinf(rate)
    t0 = time.perf_counter()
    sent, last_report, elapsed = 0, t0, 0.0

    def report(end: str = "") -> None:
        print(f"\rsent {sent:,} events  {sent / max(elapsed, 1e-9):,.0f}/s  {elapsed:.0f}s   ",
              end=end, file=sys.stderr, flush=True)

    while sent < rows:
        now = time.perf_counter()
        elapsed = now - t0
        if duration is not None and elapsed >= duration:
            break
        due = rows if unpaced else min(rows, int(elapsed * rate) + 1)
        due = min(due, sent + MAX_PIPELINE)
        if due <= sent:  # ahead of schedule: sleep until the next event is due
            time.sleep(max(0.0, min(TICK_S, sent / rate - elapsed)))
            continue
        with client.pipeline(transaction=False) as pipe:
            queue(pipe, sent, due, datetime.now(UTC))
            pipe.execute()
        sent = due
        if progress and now - last_report >= REPORT_S:
            last_report = now
            report()
    elapsed = time.perf_counter() - t0
    if progress:
        report("\n")
    return {"sent": sent, "seconds": elapsed, "achieved_rate": sent / elapsed if elapsed else 0.0}
