"""Alerts: one incident is one alert, and an alert is published once by its id wherever it is sent.

A fault makes a detector flag a run of readings, not one; paging an operator per reading would
bury the first alert under hundreds of copies. So alerts are latched per machine and channel:
the first anomalous reading raises an alert and latches the channel; the latch re-arms only after
`rearm_after` consecutive normal readings *and* `quiet_s` seconds (event time) since the last
anomalous one, so a channel that flickers in and out of its threshold stays one incident.

The alert id is derived from the id of the reading that raised it (`alert_id`), never from a
clock or a counter: a flow that replays readings after a restart, or an edge outbox forwarding
again after a crash, produces the same id, and `publish` writes an id at most once to the central
stream (`SET NX` on a memory key and `XADD`, atomically in one Lua script). This module imports
no engine and no server library: the edge and the flow share it.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

REARM_AFTER = 30  # consecutive normal readings before a latched channel may alert again
QUIET_S = 30.0  # ... and at least this long (event time) since its last anomalous reading
# How long the central stream remembers a published id. It must outlive the longest time an
# edge outbox can hold an alert (a device offline for weeks still forwards each alert once).
SEEN_TTL_S = 90 * 24 * 3600
ALERT_MAXLEN = 1_000_000


def reading_key(machine_id: str, channel: str, ts: float, reading_id: str = "") -> str:
    """The reading's own id, or one made of what identifies it (machine, channel, time)."""
    return reading_id or f"{machine_id}/{channel}/{ts!r}"


def alert_id(reading_id: str) -> str:
    """Deterministic alert id: a replayed reading raises an alert with the same id."""
    return hashlib.blake2b(reading_id.encode(), digest_size=12).hexdigest()


@dataclass(frozen=True)
class Alert:
    """One incident on one channel of one machine, as stored and sent everywhere.

    `ts` is the reading's event time (epoch seconds, UTC); `raised_at` when the detector raised
    it (ISO 8601, UTC): their difference is the detection path's own latency.
    """

    alert_id: str
    machine_id: str
    channel: str
    severity: str
    score: float
    drivers: dict[str, float]
    reading_id: str
    ts: float
    raised_at: str
    value: float = math.nan

    def record(self) -> dict[str, Any]:
        """A JSON-ready dict (the JSON-lines sink, the outbox, a webhook body)."""
        return asdict(self)

    def fields(self) -> dict[str, str]:
        """Flat string fields for `XADD` (drivers as JSON)."""
        out = {k: (json.dumps(v, sort_keys=True) if isinstance(v, dict) else
                   repr(v) if isinstance(v, float) else str(v))
               for k, v in asdict(self).items()}
        return out

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Alert:
        """Back from `record()` (what the outbox stores)."""
        return cls(**{**record, "drivers": dict(record.get("drivers") or {})})


@dataclass
class ChannelLatch:
    """The latch of one machine channel (plain data: a flow snapshots it)."""

    latched: bool = False
    normal_run: int = 0
    last_anomalous_ts: float = -math.inf
    alerts: int = 0


@dataclass
class Latches:
    """Latches of every channel a caller sees; `update` returns an alert when one is raised."""

    rearm_after: int = REARM_AFTER
    quiet_s: float = QUIET_S
    channels: dict[tuple[str, str], ChannelLatch] = field(default_factory=dict)

    def update(self, *, machine_id: str, channel: str, ts: float, anomalous: bool,
               reading_id: str = "", score: float = math.nan, severity: Any = "",
               drivers: dict[str, Any] | None = None, value: float = math.nan,
               now: datetime | None = None) -> Alert | None:
        """Feed one judged reading; the new alert if it opens an incident, else None."""
        latch = self.channels.get((machine_id, channel))
        if latch is None:
            latch = self.channels[(machine_id, channel)] = ChannelLatch()
        if not anomalous:
            if latch.latched:
                latch.normal_run += 1
                if (latch.normal_run >= self.rearm_after
                        and ts - latch.last_anomalous_ts >= self.quiet_s):
                    latch.latched, latch.normal_run = False, 0
            return None
        latch.normal_run = 0
        latch.last_anomalous_ts = max(latch.last_anomalous_ts, ts)
        if latch.latched:
            return None
        latch.latched = True
        latch.alerts += 1
        rid = reading_key(machine_id, channel, ts, reading_id)
        return Alert(alert_id=alert_id(rid), machine_id=machine_id, channel=channel,
                     severity=str(severity), score=float(score),
                     drivers={str(k): _num(v) for k, v in (drivers or {}).items()},
                     reading_id=rid, ts=float(ts),
                     raised_at=(now or datetime.now(UTC)).isoformat(), value=float(value))

    def judge(self, reading: Any, verdict: Any, *, now: datetime | None = None) -> Alert | None:
        """`update` from a `Reading` and the detector's `Verdict` (warm-up never alerts)."""
        return self.update(machine_id=reading.machine_id, channel=reading.channel,
                           ts=reading.ts, reading_id=reading.reading_id,
                           anomalous=bool(verdict.anomalous) and not verdict.warming_up,
                           score=verdict.score, severity=verdict.severity,
                           drivers=verdict.drivers, value=reading.value, now=now)

    def of_machine(self, machine_id: str) -> dict[str, ChannelLatch]:
        """One machine's latches by channel (what a flow keyed by machine snapshots)."""
        return {ch: latch for (m, ch), latch in self.channels.items() if m == machine_id}


def _num(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


# Atomically: remember the alert id (for ARGV[1] s) and XADD the alert, unless it was seen.
# Both keys share a hash slot (the `{stream}` tag), so this also runs on a Redis Cluster.
_PUBLISH_ONCE = """
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', ARGV[1]) then
  return redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', unpack(ARGV, 3))
end
return false
"""


def seen_key(stream: str, alert: str) -> str:
    """The key that remembers a published alert id (same hash slot as `stream`)."""
    return f"{{{stream}}}:seen:{alert}"


def publish(client: Any, alert: Alert, *, stream: str, ttl_s: int = SEEN_TTL_S,
            maxlen: int = ALERT_MAXLEN) -> bool:
    """XADD `alert` to `stream` unless its id was published before; whether it was written.

    Raises the client's connection errors: the caller decides whether to retry (the flow) or to
    keep the alert in its outbox (the edge).
    """
    flat = [x for kv in alert.fields().items() for x in kv]
    return client.eval(_PUBLISH_ONCE, 2, stream, seen_key(stream, alert.alert_id), ttl_s,
                       maxlen, *flat) is not None
