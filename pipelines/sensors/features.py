"""Rolling features per machine and channel: mean, std, min, max, rate of change, 10 s to 1 h.

Every path that scores a reading (the Bytewax flow, the BentoML service, the edge process, training
and `nab-score`) computes features with this one class, so they agree by construction.

The 1 min and 1 h windows run on the kit's tile engine (`rtml.features.windows`: 10 s tiles, the
window is the W / 10 tiles ending with the reading's own, so "1 min" holds 50 to 60 s of readings).
The 10 s window does not fit that engine: with 10 s tiles it would be only the reading's own partial
tile, holding one reading just after a tile boundary and ten seconds' worth just before it, so its
std would jump at every boundary. It is a small exact ring instead: the readings with
``ts - 10 < t <= ts`` (at most 100 at 10 Hz).

Rate of change over a window is the slope from the window's centre of mass to the newest reading,
``(x - mean_x) / (t - mean_t)`` per second: exact for a linear trend, robust to a noisy first
reading, and needs only sums (so the tile engine can hold it). 0 when the window spans no time.
An empty window or one reading reads std 0, roc 0.
"""

from __future__ import annotations

import math
from bisect import insort
from collections import deque
from datetime import UTC, datetime, timedelta

from pipelines.sensors.readings import Reading
from rtml.features.windows import WindowSpec, WindowState

WINDOWS = {"10s": 10, "1m": 60, "1h": 3600}
STATS = ("mean", "std", "min", "max", "roc")
RING_SECONDS = WINDOWS["10s"]
# The readings' own time axis for the tile engine: seconds since the key's first reading, so the
# sum of times over an hour at 10 Hz (~1e8) keeps sub-millisecond precision in a float.
TILED = WindowSpec(
    windows={"1m": 60, "1h": 3600},
    features={**{f"{stat}_{w}": (stat, w, "value") for w in ("1m", "1h")
                 for stat in ("mean", "std", "min", "max")},
              **{f"tmean_{w}": ("mean", w, "t") for w in ("1m", "1h")}},
    values=("value", "t"),
)
_LATENESS = timedelta(seconds=3600)


def feature_names() -> list[str]:
    """The feature columns, window by window: `mean_10s, std_10s, ..., roc_1h` (15)."""
    return [f"{stat}_{w}" for w in WINDOWS for stat in STATS]


class RollingFeatures:
    """One machine and channel's windows; `update` counts a reading and returns the features.

    Out-of-order readings within the hour are counted in the tiled windows (the engine's lateness
    rules); the ring keeps readings sorted by time, and a reading older than the ring's 10 s is
    left out of it. A reading id seen before (a replay) is not counted again.
    """

    __slots__ = ("origin", "ring", "state", "_n")

    def __init__(self) -> None:
        self.origin: float | None = None
        self.ring: deque[tuple[float, float]] = deque()
        self.state = WindowState(TILED, allowed_lateness=_LATENESS)
        self._n = 0

    def update(self, reading: Reading) -> dict[str, float]:
        """Count `reading`; its features as of its own time (tile engine + ring)."""
        if self.origin is None:
            self.origin = reading.ts
        self._n += 1
        rid = reading.reading_id or f"{reading.ts!r}"
        when = datetime.fromtimestamp(reading.ts, UTC)
        counted = self.state.add_event(rid, when, {"value": reading.value,
                                                   "t": reading.ts - self.origin})
        if counted:
            self._ring_add(reading.ts, reading.value)
        at = max(when, self.state.watermark or when)
        return self.features(reading.value, reading.ts, at)

    def features(self, x: float, ts: float, at: datetime) -> dict[str, float]:
        """The 15 features for newest value `x` at `ts` (tiled windows evaluated `at`)."""
        out = _ring_stats(self.ring, x, ts)
        tiled = self.state.values(at)
        t = ts - (self.origin or ts)
        for w in ("1m", "1h"):
            mean = tiled[f"mean_{w}"]
            out[f"mean_{w}"] = mean
            out[f"std_{w}"] = tiled[f"std_{w}"]
            out[f"min_{w}"] = tiled[f"min_{w}"]
            out[f"max_{w}"] = tiled[f"max_{w}"]
            dt = t - tiled[f"tmean_{w}"]
            out[f"roc_{w}"] = (x - mean) / dt if dt > 1e-9 else 0.0
        return out

    def _ring_add(self, ts: float, x: float) -> None:
        ring = self.ring
        if ring and ts < ring[-1][0]:
            if ts <= ring[-1][0] - RING_SECONDS:
                return
            items = list(ring)
            insort(items, (ts, x))
            ring.clear()
            ring.extend(items)
        else:
            ring.append((ts, x))
        cut = ring[-1][0] - RING_SECONDS
        while ring and ring[0][0] <= cut:
            ring.popleft()


def _ring_stats(ring: deque[tuple[float, float]], x: float, ts: float) -> dict[str, float]:
    n = len(ring)
    if not n:
        return {"mean_10s": 0.0, "std_10s": 0.0, "min_10s": 0.0, "max_10s": 0.0, "roc_10s": 0.0}
    sx = st = 0.0
    lo = math.inf
    hi = -math.inf
    for t, v in ring:
        sx += v
        st += t
        if v < lo:
            lo = v
        if v > hi:
            hi = v
    mean = sx / n
    ss = 0.0
    for _, v in ring:
        d = v - mean
        ss += d * d
    dt = ts - st / n
    return {"mean_10s": mean, "std_10s": math.sqrt(ss / n), "min_10s": lo, "max_10s": hi,
            "roc_10s": (x - mean) / dt if dt > 1e-9 else 0.0}
