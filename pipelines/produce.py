"""Replay generated transactions as live events: `rtml stream produce --rate 1000`.

Events keep their original order and are stamped with the moment they are sent, so the stream
looks like live traffic. Pacing is open loop (event i is due at t0 + i/rate); when behind, the
producer sends what is due in one pipeline instead of sleeping. Streams are capped with
`MAXLEN ~`, so a producer left running cannot fill Redis.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import redis

from rtml.events import STREAM_PREFIX, TxEvent, encode, partition_of, stream_key

MAX_PIPELINE = 2000


def produce(*, host: str, port: int, transactions: pd.DataFrame, rate: float,
            duration: float | None, partitions: int = 4, prefix: str = STREAM_PREFIX,
            maxlen: int = 1_000_000, progress: bool = True) -> dict[str, Any]:
    """XADD `transactions` (in event-time order) at `rate` per second; returns what was sent."""
    client = redis.Redis(host=host, port=port)
    tx = transactions.sort_values("event_timestamp", kind="stable")
    rows = list(zip(tx["transaction_id"].astype(str), tx["customer_id"].astype("int64"),
                    tx["terminal_id"].astype("int64"), tx["amount"].astype(float), strict=True))
    keys = [stream_key(i, prefix) for i in range(partitions)]
    t0 = time.perf_counter()
    sent, last_report = 0, t0
    while sent < len(rows):
        now = time.perf_counter()
        elapsed = now - t0
        if duration is not None and elapsed >= duration:
            break
        due = min(len(rows), int(elapsed * rate) + 1, sent + MAX_PIPELINE)
        if due <= sent:
            time.sleep(min(0.005, (sent + 1) / rate - elapsed))
            continue
        stamp = datetime.now(UTC)
        with client.pipeline(transaction=False) as pipe:
            for tid, customer, terminal, amount in rows[sent:due]:
                event = TxEvent(transaction_id=tid, customer_id=int(customer),
                                terminal_id=int(terminal), amount=float(amount), event_time=stamp)
                pipe.xadd(keys[partition_of(int(customer), partitions)], encode(event),
                          maxlen=maxlen, approximate=True)
            pipe.execute()
        sent = due
        if progress and now - last_report >= 1.0:
            last_report = now
            print(f"\r  sent {sent:,} events, {sent / max(elapsed, 1e-9):,.0f}/s, "
                  f"{elapsed:.0f}s", end="", file=sys.stderr, flush=True)
    seconds = time.perf_counter() - t0
    if progress:
        print(file=sys.stderr)
    client.close()
    return {"sent": sent, "seconds": seconds, "achieved_rate": sent / seconds if seconds else 0.0}
