"""Replay sensor readings onto the partitioned streams at a fixed rate (tests, demo, benchmarks).

Readings keep their order; each is sent to its machine's partition (`streams.partition_of`). By
default a reading is stamped with the moment it is sent (`ts` = now: any recording becomes live
traffic, as a load test needs); `own_times` keeps its recorded time instead. Pacing is the kit's
open-loop pacer (`rtml.streams.producer`); streams are capped with `MAXLEN ~`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipelines.sensors.streams import READINGS_PREFIX, encode, partition_of, stream_key
from rtml.redis import connect
from rtml.settings import Settings
from rtml.streams.producer import pace

# (machine_id, channel, ts, value, reading_id): one reading to send.
ReadingRow = tuple[str, str, float, float, str]


def produce(*, address: str, readings: Sequence[ReadingRow], rate: float,
            duration: float | None = None, partitions: int = 4, settings: Settings | None = None,
            prefix: str = READINGS_PREFIX, maxlen: int = 1_000_000, own_times: bool = False,
            progress: bool = True) -> dict[str, Any]:
    """XADD `readings` in order at `rate` per second; `{"sent", "seconds", "achieved_rate"}`."""
    if partitions < 1:
        raise ValueError(f"partitions must be >= 1, got {partitions}")
    keys = [stream_key(i, prefix) for i in range(partitions)]

    def queue(pipe: Any, start: int, end: int, stamp: Any) -> None:
        now = stamp.timestamp()
        for machine, channel, ts, value, rid in readings[start:end]:
            pipe.xadd(keys[partition_of(machine, partitions)],
                      encode(machine_id=machine, channel=channel, ts=ts if own_times else now,
                             value=value, reading_id=rid),
                      maxlen=maxlen, approximate=True)

    client = connect(settings, role="producer", address=address)
    try:
        return pace(client, rows=len(readings), rate=rate, duration=duration, queue=queue,
                    progress=progress)
    finally:
        client.close()


def rows_of(frame: Any) -> list[ReadingRow]:
    """Reading rows from a frame with machine_id, channel, ts (epoch s), value[, reading_id]."""
    ids = (frame["reading_id"].astype(str).tolist() if "reading_id" in frame
           else [""] * len(frame))
    return list(zip(frame["machine_id"].astype(str).tolist(),
                    frame["channel"].astype(str).tolist(),
                    frame["ts"].astype(float).tolist(), frame["value"].astype(float).tolist(),
                    ids, strict=True))
