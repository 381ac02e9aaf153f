"""Replay generated transactions as live events: `rtml stream produce --rate 1000`.

Events keep their original (event-time) order and are stamped with the wall-clock moment they are
sent, so the stream looks like live traffic (a load test: any history becomes "now"). With
`own_times` each keeps its own event time instead: replaying the payments since the last nightly
snapshot that way leaves the flow's windows holding what a real hour held (a backlog, caught up at
`rate`), which is how the demo loads the streamed features. Pacing is the kit's open-loop pacer
(`rtml.streams.producer`). Streams are capped with `MAXLEN ~`, so a producer left running cannot
fill Redis.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from pipelines.fraud.events import STREAM_PREFIX, TxEvent, encode, partition_of, stream_key
from rtml.redis import connect
from rtml.settings import Settings
from rtml.streams.producer import pace


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

    def queue(pipe: Any, start: int, end: int, stamp: Any) -> None:
        for tid, customer, terminal, amount, at in rows[start:end]:
            event = TxEvent(transaction_id=tid, customer_id=customer, terminal_id=terminal,
                            amount=amount, event_time=at or stamp)
            pipe.xadd(keys[partition_of(customer, partitions)], encode(event), maxlen=maxlen,
                      approximate=True)

    client = connect(settings, role="producer", address=address)
    try:
        return pace(client, rows=len(rows), rate=rate, duration=duration, queue=queue,
                    progress=progress)
    finally:
        client.close()
