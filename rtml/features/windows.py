"""Sliding-window statistics that are fresh on every event, shared by a stream and its backfill.

No engine and no scenario here: a Bytewax step and an offline backfill call the same
`WindowState`, so a feature trains on exactly what it serves. An event is an id, an event time and
a dict of numeric values; a `WindowSpec` names the windows and, per feature, a statistic of one
value over one window: count, sum, mean, std (population), min, max or last.

Window semantics. Event time is cut into tiles of `TILE_SECONDS` (10 s): tile k holds the events
with ``k * 10 <= epoch seconds < (k + 1) * 10``. "The last W" as of time t holds the events whose
tile k satisfies ``tile(t) - W / 10 < k <= tile(t)``: the W / 10 tiles ending with t's own
(partial) tile. Windows are exact to a tile, the documented trade-off: an event leaves a 10-minute
window at the start of the tile 600 s after its own tile, i.e. 590 to 600 s after it happened.

What is online at wall time t (the contract serving reads and training must reproduce): the
statistics over the events the stream has seen whose tile lies in the window ending with tile(t).
So a stream evaluates every emission at the later of the wall clock and the key's watermark, never
at the event's own time: an event replayed from a backlog, hours behind the clock, updates the
windows *as of now*. Values change at events and at the instants a tile leaves a window; a stream
re-emits at those instants with timers (`next_expiry`), and `backfill.history` writes a row at
each of them too, so a point-in-time join of the backfill ("latest row at or before t") is the
value the stream serves at t, including windows that have decayed since the key's last event.

Lateness. The watermark is a key's newest counted event time. An event more than
`allowed_lateness` behind it, or whose tile has already left every window (as of the later of the
watermark and the clock), is not counted and increments `late_dropped` (`expired` for the latter).
An event id already counted (a replay after a crash or rewind) is ignored and increments
`duplicates`. Ids are remembered with their tile and forgotten with it, so state per key is at most
`max window / TILE_SECONDS` tiles.

Per tile the state keeps only what the spec's statistics need, per value: the sum (sum, mean,
std), the sum of squared deviations from the tile's mean (std: tiles combine with Chan's parallel
formula, never a raw sum of squares minus a square), the min, the max, and the value of the
tile's newest event (last; ties in event time go to the later arrival). An empty window reads 0
for every statistic, like the no-history defaults a serving path declares.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right, insort
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from rtml.features.window_spec import (
    ACCUMULATORS,
    NEEDS,
    STATISTICS,
    TILE_SECONDS,
    Statistic,
    WindowSpec,
    tile_of,
    tile_start,
)

__all__ = ["STATISTICS", "TILE_SECONDS", "Frozen", "Statistic", "Values", "WindowSpec",
           "WindowState", "decays", "on_event", "on_timer", "tile_of", "tile_start"]

Values = dict[str, float | int]
# A WindowState's mutable parts: ((tile, count, *accumulators, ids), ...), watermark, clock, and
# the counters late_dropped, duplicates, expired. With one summed value the tile entry is
# (tile, count, sum, ids): the layout snapshots had before the engine was generalized.
Frozen = tuple[tuple[Any, ...], "datetime | None", "datetime | None", int, int, int]

def _fresh(layout: dict[tuple[str, str], int]) -> list[Any]:
    acc: list[Any] = [0.0] * (len(layout) + sum(1 for _, a in layout if a == "last"))
    for (_, kind), at in layout.items():
        if kind == "min":
            acc[at] = math.inf
        elif kind == "max":
            acc[at] = -math.inf
        elif kind == "last":
            acc[at] = None  # the newest event time seen in the tile; its value at `at + 1`
    return acc


@dataclass
class WindowState:
    """One key's windows: tiles holding events, the ids counted in them, watermark and counters.

    Plain data (picklable); `freeze` gives the immutable snapshot a Bytewax step keeps.
    """

    spec: WindowSpec
    allowed_lateness: timedelta = timedelta(seconds=60)
    tiles: dict[int, list] = field(default_factory=dict)  # tile -> [count, accumulators, ids]
    order: list[int] = field(default_factory=list)  # sorted keys of `tiles`
    seen: dict[str, int] = field(default_factory=dict)  # event id -> its tile
    watermark: datetime | None = None  # newest event time counted
    clock: datetime | None = None  # latest `expire` time
    late_dropped: int = 0  # behind the watermark by more than the allowed lateness
    duplicates: int = 0  # an id already counted
    expired: int = 0  # its tile had left every window when it arrived

    def __post_init__(self) -> None:
        if not isinstance(self.allowed_lateness, timedelta):
            self.allowed_lateness = timedelta(seconds=float(self.allowed_lateness))
        self.horizon = max(self.spec.windows.values()) // TILE_SECONDS
        self._layout = self.spec.layout()
        get = self._layout.get
        self._updates = [(v, get((v, "sum"), -1), get((v, "m2"), -1), get((v, "min"), -1),
                          get((v, "max"), -1), get((v, "last"), -1)) for v in self.spec.values
                         if any((v, a) in self._layout for a in ACCUMULATORS)]
        # Per feature: (name, statistic, window, accumulator offsets it reads).
        self._features = []
        for name in self.spec.features:
            stat, label, value = self.spec.feature(name)
            offsets = tuple(self._layout[(value, acc)] for acc in NEEDS[stat])  # type: ignore[index]
            self._features.append((name, stat, label, offsets))
        self._window_sums = [
            (label, self.spec.tiles(label),
             sorted({offsets[0] for _, stat, lb, offsets in self._features
                     if lb == label and stat in ("sum", "mean", "std")}))
            for label in self.spec.windows]

    def now(self) -> datetime | None:
        """The later of the watermark and the clock: the instant windows are evaluated at."""
        if self.clock is None or (self.watermark is not None and self.watermark > self.clock):
            return self.watermark
        return self.clock

    def _first_kept(self) -> int | None:
        now = self.now()
        return None if now is None else tile_of(now) - self.horizon + 1

    def add_event(self, event_id: str, event_time: datetime, values: Mapping[str, float]) -> bool:
        """Count one event; False (and a counter bumped) for a duplicate or a late event."""
        if event_id in self.seen:
            self.duplicates += 1
            return False
        tile = tile_of(event_time)
        first = self._first_kept()
        if first is not None and tile < first:
            self.expired += 1
            return False
        if self.watermark is not None and event_time < self.watermark - self.allowed_lateness:
            self.late_dropped += 1
            return False
        slot = self.tiles.get(tile)
        if slot is None:
            slot = self.tiles[tile] = [0, _fresh(self._layout), []]
            insort(self.order, tile)
        n = slot[0] = slot[0] + 1
        acc = slot[1]
        for value, s, m2, lo, hi, last in self._updates:
            x = values[value]
            if s >= 0:
                if m2 >= 0:  # Welford: deviations from the tile mean before and after x
                    before = acc[s] / (n - 1) if n > 1 else 0.0
                    acc[s] += x
                    acc[m2] += (x - before) * (x - acc[s] / n)
                else:
                    acc[s] += x
            if lo >= 0 and x < acc[lo]:
                acc[lo] = x
            if hi >= 0 and x > acc[hi]:
                acc[hi] = x
            if last >= 0 and (acc[last] is None or event_time >= acc[last]):
                acc[last], acc[last + 1] = event_time, x
        slot[2].append(event_id)
        self.seen[event_id] = tile
        if self.watermark is None or event_time > self.watermark:
            self.watermark = event_time
            self._evict()
        return True

    def _evict(self) -> None:
        first = self._first_kept()
        cut = 0 if first is None else bisect_left(self.order, first)
        for tile in self.order[:cut]:
            for eid in self.tiles.pop(tile)[2]:
                del self.seen[eid]
        del self.order[:cut]

    def values(self, at: datetime) -> Values:
        """The features as of time `at`, per the tile semantics in the module docstring."""
        current = tile_of(at)
        order, tiles = self.order, self.tiles
        hi = bisect_right(order, current)
        # One pass per window for the count and the sums (the hot path of every emission).
        windows: dict[str, tuple[int, dict[int, float], int]] = {}
        for label, n_tiles, sums in self._window_sums:
            lo = bisect_left(order, current - n_tiles + 1)
            count = 0
            totals = dict.fromkeys(sums, 0.0)
            if len(sums) == 1:
                (s,) = sums
                total = 0.0
                for tile in order[lo:hi]:
                    slot = tiles[tile]
                    count += slot[0]
                    total += slot[1][s]
                totals[s] = total
            else:
                for tile in order[lo:hi]:
                    slot = tiles[tile]
                    count += slot[0]
                    for s in sums:
                        totals[s] += slot[1][s]
            windows[label] = (count, totals, lo)
        out: Values = {}
        for name, stat, label, offsets in self._features:
            count, totals, lo = windows[label]
            if stat == "count":
                out[name] = count
            elif not count:
                out[name] = 0.0
            elif stat == "sum":
                out[name] = totals[offsets[0]]
            elif stat == "mean":
                out[name] = totals[offsets[0]] / count
            else:
                slots = [tiles[tile] for tile in order[lo:hi]]
                if stat == "std":
                    s, m2 = offsets
                    out[name] = _std(slots, s, m2, totals[s] / count, count)
                elif stat == "min":
                    out[name] = float(min(slot[1][offsets[0]] for slot in slots))
                elif stat == "max":
                    out[name] = float(max(slot[1][offsets[0]] for slot in slots))
                else:  # last: the newest tile holds the newest event
                    out[name] = float(slots[-1][1][offsets[0] + 1])
        return out

    def next_expiry(self) -> datetime | None:
        """The next instant a tile leaves a window (values change), after the watermark/clock."""
        now = self.now()
        if now is None or not self.order:
            return None
        current = tile_of(now)
        due = []
        for label in self.spec.windows:
            n = self.spec.tiles(label)
            i = bisect_left(self.order, current - n + 1)  # oldest tile still in this window
            if i < len(self.order):
                due.append(self.order[i] + n)
        return tile_start(min(due)) if due else None

    def expire(self, now: datetime) -> None:
        """Advance the clock to `now` and forget the tiles (and ids) out of every window."""
        if self.clock is None or now > self.clock:
            self.clock = now
        self._evict()

    def freeze(self) -> Frozen:
        """An immutable copy of the mutable parts, for snapshots (far cheaper than a deepcopy)."""
        return (tuple((tile, self.tiles[tile][0], *self.tiles[tile][1], tuple(self.tiles[tile][2]))
                      for tile in self.order),
                self.watermark, self.clock, self.late_dropped, self.duplicates, self.expired)

    def thaw(self, frozen: Frozen) -> WindowState:
        """Restore what `freeze` returned into this (fresh) state; returns self."""
        tiles, self.watermark, self.clock, self.late_dropped, self.duplicates, self.expired = frozen
        self.tiles = {entry[0]: [entry[1], list(entry[2:-1]), list(entry[-1])] for entry in tiles}
        self.order = [entry[0] for entry in tiles]
        self.seen = {eid: entry[0] for entry in tiles for eid in entry[-1]}
        return self

    def is_empty(self) -> bool:
        """True when no tile is held (the key can be dropped)."""
        return not self.order


def _std(slots: list[list], s: int, m2: int, mean: float, count: int) -> float:
    """Population std of the union of tiles: Σ (M2_i + n_i (mean_i - mean)²) / n (Chan et al.)."""
    total = 0.0
    for slot in slots:
        d = slot[1][s] / slot[0] - mean
        total += slot[1][m2] + slot[0] * d * d
    return math.sqrt(max(total, 0.0) / count)


def on_event(state: WindowState, event_id: str, event_time: datetime,
             values: Mapping[str, float], now: datetime) -> tuple[Values, datetime] | None:
    """`(features, at)` after counting one event at wall time `now`; None when it was not counted.

    `at` is the later of `now` and the key's watermark: a backlogged event (far behind the wall
    clock) changes the windows as of now, not as of its own time.
    """
    state.expire(now)
    if not state.add_event(event_id, event_time, values):
        return None
    at = state.now()
    assert at is not None
    return state.values(at), at


def on_timer(state: WindowState, now: datetime) -> tuple[Values, datetime]:
    """`(features, at)` as of the later of `now` and the watermark, expired tiles forgotten."""
    state.expire(now)
    at = state.now()
    assert at is not None
    return state.values(at), at


def decays(state: WindowState, until: datetime) -> list[tuple[Values, datetime]]:
    """Every change a quiet key goes through up to `until`: the rows a stream's timers emit."""
    out = []
    while (due := state.next_expiry()) is not None and due <= until:
        out.append(on_timer(state, due))
    return out
