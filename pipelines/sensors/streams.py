"""Sensor readings on Redis Streams: key names, partitioning by machine, the wire format.

A reading is one `XADD` with flat string fields `machine_id`, `channel`, `ts` (epoch seconds,
UTC), `value` and `reading_id`. Readings are partitioned by machine over `partitions` streams
(`rtml:sensors:readings:<i>`), so one machine's readings keep their order in one partition and a
machine is owned by one flow worker. What cannot be parsed goes to `DEAD_LETTER_STREAM` with the
reason. Alerts of every machine go to `ALERT_STREAM`, the stream the edge outbox forwards to too.
"""

from __future__ import annotations

import zlib

READINGS_PREFIX = "rtml:sensors:readings"
DEAD_LETTER_STREAM = "rtml:sensors:dead"
ALERT_STREAM = "rtml:alerts"


def stream_key(partition: int, prefix: str = READINGS_PREFIX) -> str:
    """Redis key of one partition's stream."""
    return f"{prefix}:{partition}"


def partition_of(machine_id: str, partitions: int) -> int:
    """The partition a machine's readings go to (stable across processes: crc32, not hash())."""
    return zlib.crc32(machine_id.encode()) % partitions


def encode(*, machine_id: str, channel: str, ts: float, value: float,
           reading_id: str = "") -> dict[str, str]:
    """The stream fields of one reading (`repr` keeps every bit of a float)."""
    fields = {"machine_id": machine_id, "channel": channel, "ts": repr(float(ts)),
              "value": repr(float(value))}
    if reading_id:
        fields["reading_id"] = reading_id
    return fields
