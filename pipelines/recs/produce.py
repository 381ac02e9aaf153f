"""Replay simulated shop events as live ones: `rtml recs produce --rate 1000`.

Events keep their event-time order and are stamped with the moment they are sent (a live-looking
stream: any history becomes "now"), or keep their own times with `own_times` (a backlog: the flow
catches up and ends each session as its event times say). One stream, `rtml:recs:events`,
capped with `MAXLEN ~`; pacing is the kit's open-loop pacer.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from pipelines.recs.events import COLUMNS, STREAM, encode
from rtml.redis import connect
from rtml.settings import Settings
from rtml.streams.producer import pace


def produce(*, settings: Settings, events: pd.DataFrame, rate: float, duration: float | None,
            own_times: bool = False, stream: str = STREAM, maxlen: int = 1_000_000,
            progress: bool = True) -> dict[str, Any]:
    """XADD `events` (columns `pipelines.recs.events.COLUMNS`) in time order at `rate`/s.

    Returns `{"sent", "seconds", "achieved_rate"}`.
    """
    ordered = events.sort_values("ts", kind="stable")
    rows = [dict(zip(COLUMNS, values, strict=True))
            for values in ordered[list(COLUMNS)].itertuples(index=False, name=None)]

    def queue(pipe: Any, start: int, end: int, stamp: Any) -> None:
        for row in rows[start:end]:
            pipe.xadd(stream, encode(row if own_times else {**row, "ts": stamp}),
                      maxlen=maxlen, approximate=True)

    client = connect(settings, role="producer")
    try:
        return pace(client, rows=len(rows), rate=rate, duration=duration, queue=queue,
                    progress=progress)
    finally:
        client.close()
