"""Replay generated transactions as live events: `rtml stream produce --rate 1000`.

Events keep their original (event-time) order and are stamped with the wall-clock moment they are
sent, so the stream looks like live traffic (a load test: any history becomes "now"). With
`own_times` each keeps its own event time instead: replaying the payments since the last nightly
snapshot that way leaves the flow's windows holding what a real hour held (a backlog, caught up at
`rate`), which is how the demo loads the streamed features. Pacing is open loop: event i is due
at t0 + i/rate; each wake-up sends everything due in one pipeline, so a producer that fell behind
catches up in batches and never sleeps while behind. Streams are capped with `MAXLEN ~`, so a
producer left running cannot fill Redis.
"""

from __future__ import annotations

import math
import sys
import time
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from pipelines.fraud.events import STREAM_PREFIX, TxEvent, encode, partition_of, stream_key
from rtml.redis import connect
from rtml.settings import Settings

MAX_PIPELINE = 2000  # most XADDs in one round trip
TICK_S = 0.005  # longest sleep while ahead of schedule
REPORT_S = 1.0


def produce(*, address: str, settings: Settings | None = None, transactions: pd.DataFrame,
            rate: float, duration: float | None, partitions: int = 4,
            prefix: str = STREAM_PREFIX,
            maxlen: int = 1_000_000, progress: bool = True, own_times: bool = False
            ) -> dict[str, Any]:
    """XADD `transactions` in event-time order at `rate` events/s.

    Stamped with the send time, or with their own `event_timestamp` when `own_times`.
    Stops after `duration` seconds (None: when the rows run out). Returns
    `{"sent", "seconds", "achieved_rate"}`.
    """
    if not rate > 0:
        raise ValueError(f"rate must be positive, got {rate}")
    if partitions < 1:
        raise ValueError(f"partitions must be >= 1, got {partitions}")
    tx = transactions.sort_values("event_timestamp", kind="stable")
    own = ([t.to_pydatetime() for t in pd.to_datetime(tx["event_timestamp"], utc=True)]
           if own_times else [None] * len(tx))
    rows = list(zip(tx["transaction_id"].astype(str).tolist(),
                    tx["customer_id"].astype("int64").tolist(),
                    tx["terminal_id"].astype("int64").tolist(),
                    tx["amount"].astype(float).tolist(), own, strict=True))
    keys = [stream_key(i, prefix) for i in range(partitions)]
    unpaced = math.isinf(rate)
    client = connect(settings, role="producer", address=address)
    t0 = time.perf_counter()
    sent, last_report, elapsed = 0, t0, 0.0

    def report(end: str = "") -> None:
        print(f"\rsent {sent:,} events  {sent / max(elapsed, 1e-9):,.0f}/s  {elapsed:.0f}s   ",
              end=end, file=sys.stderr, flush=True)

    try:
        while sent < len(rows):
            now = time.perf_counter()
            elapsed = now - t0
            if duration is not None and elapsed >= duration:
                break
            due = len(rows) if unpaced else min(len(rows), int(elapsed * rate) + 1)
            due = min(due, sent + MAX_PIPELINE)
            if due <= sent:  # ahead of schedule: sleep until the next event is due
                time.sleep(max(0.0, min(TICK_S, sent / rate - elapsed)))
                continue
            stamp = datetime.now(UTC)
            with client.pipeline(transaction=False) as pipe:
                for tid, customer, terminal, amount, at in rows[sent:due]:
                    event = TxEvent(transaction_id=tid, customer_id=customer,
                                    terminal_id=terminal, amount=amount, event_time=at or stamp)
                    pipe.xadd(keys[partition_of(customer, partitions)], encode(event),
                              maxlen=maxlen, approximate=True)
                pipe.execute()
            sent = due
            if progress and now - last_report >= REPORT_S:
                last_report = now
                report()
        elapsed = time.perf_counter() - t0
        if progress:
            report("\n")
    finally:
        client.close()
    return {"sent": sent, "seconds": elapsed, "achieved_rate": sent / elapsed if elapsed else 0.0}
