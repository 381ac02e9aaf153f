"""Sliding-window aggregates that are fresh on every event, shared by the stream and the backfill.

No engine here: the Bytewax flow (`pipelines/fraud/flow.py`) and the offline `backfill` call
the same `WindowState`, so a feature trains on exactly what it serves.

Window semantics. Event time is cut into tiles of `TILE_SECONDS` (10 s): tile k holds the events
with ``k * 10 <= epoch seconds < (k + 1) * 10``. "The last W" as of time t counts the events whose
tile k satisfies ``tile(t) - W / 10 < k <= tile(t)``: the W / 10 tiles ending with t's own
(partial) tile. Windows are exact to a tile, the documented trade-off: an event leaves the 10-minute
window at the start of the tile 600 s after its own tile, i.e. 590 to 600 s after it happened.

What is online at wall time t (the contract serving reads and training must reproduce): the
aggregate over the events the flow has seen whose tile lies in the window ending with tile(t). So
the stream evaluates every emission at the later of the wall clock and the key's watermark, never
at the event's own time: an event replayed from a backlog, hours behind the clock, updates the
windows *as of now*. Values change at events and at the instants a tile leaves a window; the flow
re-emits at those instants with timers, and the backfill writes a row at each of them too, so a
point-in-time join of the backfill ("latest row at or before t") is the value the stream serves at
t, including windows that have decayed since the customer's last payment.

Lateness. The watermark is a key's newest counted event time. An event more than
`allowed_lateness` behind it, or whose tile has already left every window (as of the later of the
watermark and the clock), is not counted and increments `late_dropped` (`expired` for the latter).
A transaction id already counted (a replay after a crash or rewind) is ignored and increments
`duplicates`. Ids are remembered with their tile and forgotten with it, so state per key is at most
`max window / TILE_SECONDS` tiles.
"""

from __future__ import annotations

import multiprocessing
from bisect import bisect_left, bisect_right, insort
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.fraud.events import TxEvent
from pipelines.fraud.offline_sources import SCHEMAS

TILE_SECONDS = 10
_TILE = timedelta(seconds=TILE_SECONDS)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
Aggregate = Literal["count", "sum", "mean"]
Values = dict[str, float | int]
# A WindowState's mutable parts: ((tile, count, amount sum, ids), ...), watermark, clock, and the
# counters late_dropped, duplicates, expired.
Frozen = tuple[tuple[tuple[int, int, float, tuple[str, ...]], ...], "datetime | None",
               "datetime | None", int, int, int]


@dataclass(frozen=True)
class WindowSpec:
    """Windows (label -> seconds, a multiple of the tile); features (name -> (aggregate, label))."""

    windows: dict[str, int]
    features: dict[str, tuple[Aggregate, str]]

    def tiles(self, label: str) -> int:
        """Number of tiles window `label` spans."""
        return self.windows[label] // TILE_SECONDS


CUSTOMER = WindowSpec(
    windows={"10m": 600, "1h": 3600},
    features={
        "cust_tx_count_10m": ("count", "10m"),
        "cust_amount_sum_10m": ("sum", "10m"),
        "cust_mean_amount_10m": ("mean", "10m"),
        "cust_tx_count_1h": ("count", "1h"),
        "cust_amount_sum_1h": ("sum", "1h"),
        "cust_mean_amount_1h": ("mean", "1h"),
    },
)
TERMINAL = WindowSpec(windows={"1h": 3600}, features={"term_tx_count_1h": ("count", "1h")})


def tile_of(t: datetime) -> int:
    """The tile index of a timezone-aware time (exact integer arithmetic)."""
    return (t - _EPOCH) // _TILE


def tile_start(tile: int) -> datetime:
    """The UTC time a tile starts."""
    return _EPOCH + tile * _TILE


@dataclass
class WindowState:
    """One key's windows: tiles holding events, the ids counted in them, watermark and counters.

    Plain data (picklable, deep-copyable): the Bytewax step snapshots it as is.
    """

    spec: WindowSpec
    allowed_lateness: timedelta = timedelta(seconds=60)
    tiles: dict[int, list] = field(default_factory=dict)  # tile -> [count, amount sum, ids]
    order: list[int] = field(default_factory=list)  # sorted keys of `tiles`
    seen: dict[str, int] = field(default_factory=dict)  # transaction id -> its tile
    watermark: datetime | None = None  # newest event time counted
    clock: datetime | None = None  # latest `expire` time
    late_dropped: int = 0  # behind the watermark by more than the allowed lateness
    duplicates: int = 0  # an id already counted
    expired: int = 0  # its tile had left every window when it arrived

    def __post_init__(self) -> None:
        if not isinstance(self.allowed_lateness, timedelta):
            self.allowed_lateness = timedelta(seconds=float(self.allowed_lateness))
        self.horizon = max(self.spec.windows.values()) // TILE_SECONDS

    def now(self) -> datetime | None:
        """The later of the watermark and the clock: the instant windows are evaluated at."""
        if self.clock is None or (self.watermark is not None and self.watermark > self.clock):
            return self.watermark
        return self.clock

    def _first_kept(self) -> int | None:
        now = self.now()
        return None if now is None else tile_of(now) - self.horizon + 1

    def add(self, event_time: datetime, amount: float, transaction_id: str) -> bool:
        """Count one event; False (and a counter bumped) for a duplicate or a late event."""
        if transaction_id in self.seen:
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
            slot = self.tiles[tile] = [0, 0.0, []]
            insort(self.order, tile)
        slot[0] += 1
        slot[1] += amount
        slot[2].append(transaction_id)
        self.seen[transaction_id] = tile
        if self.watermark is None or event_time > self.watermark:
            self.watermark = event_time
            self._evict()
        return True

    def _evict(self) -> None:
        first = self._first_kept()
        cut = 0 if first is None else bisect_left(self.order, first)
        for tile in self.order[:cut]:
            for tid in self.tiles.pop(tile)[2]:
                del self.seen[tid]
        del self.order[:cut]

    def values(self, at: datetime) -> Values:
        """The features as of time `at`, per the tile semantics in the module docstring."""
        current = tile_of(at)
        hi = bisect_right(self.order, current)
        totals: dict[str, tuple[int, float]] = {}
        for label in self.spec.windows:
            count, total = 0, 0.0
            lo = bisect_left(self.order, current - self.spec.tiles(label) + 1)
            for tile in self.order[lo:hi]:
                slot = self.tiles[tile]
                count += slot[0]
                total += slot[1]
            totals[label] = (count, total)
        out: Values = {}
        for name, (aggregate, label) in self.spec.features.items():
            count, total = totals[label]
            if aggregate == "count":
                out[name] = count
            elif aggregate == "sum":
                out[name] = total
            else:
                out[name] = total / count if count else 0.0
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
        return (tuple((tile, *self.tiles[tile][:2], tuple(self.tiles[tile][2]))
                      for tile in self.order),
                self.watermark, self.clock, self.late_dropped, self.duplicates, self.expired)

    def thaw(self, frozen: Frozen) -> WindowState:
        """Restore what `freeze` returned into this (fresh) state; returns self."""
        tiles, self.watermark, self.clock, self.late_dropped, self.duplicates, self.expired = frozen
        self.tiles = {tile: [count, total, list(ids)] for tile, count, total, ids in tiles}
        self.order = [tile for tile, *_ in tiles]
        self.seen = {tid: tile for tile, _, _, ids in tiles for tid in ids}
        return self

    def is_empty(self) -> bool:
        """True when no tile is held (the key can be dropped)."""
        return not self.order


def customer_state(**kw: timedelta | float) -> WindowState:
    """A customer's count, amount sum and mean over 10 minutes and 1 hour."""
    return WindowState(CUSTOMER, **kw)  # type: ignore[arg-type]


def terminal_state(**kw: timedelta | float) -> WindowState:
    """A terminal's transaction count over 1 hour."""
    return WindowState(TERMINAL, **kw)  # type: ignore[arg-type]


def on_event(state: WindowState, event: TxEvent, now: datetime
             ) -> tuple[Values, datetime] | None:
    """`(values, at)` after counting `event` at wall time `now`; None when it was not counted.

    `at` is the later of `now` and the key's watermark: a backlogged event (far behind the wall
    clock) changes the windows as of now, not as of its own time.
    """
    state.expire(now)
    if not state.add(event.event_time, event.amount, event.transaction_id):
        return None
    at = state.now()
    assert at is not None
    return state.values(at), at


def on_timer(state: WindowState, now: datetime) -> tuple[Values, datetime]:
    """`(values, at)` as of the later of `now` and the watermark, after forgetting expired tiles."""
    state.expire(now)
    at = state.now()
    assert at is not None
    return state.values(at), at


def decays(state: WindowState, until: datetime) -> list[tuple[Values, datetime]]:
    """Every change a quiet key goes through up to `until`: the rows the flow's timers emit."""
    out = []
    while (due := state.next_expiry()) is not None and due <= until:
        out.append(on_timer(state, due))
    return out


_KINDS = {"customer": (CUSTOMER, "customer_fresh.parquet"),
          "terminal": (TERMINAL, "terminal_fresh.parquet")}


def backfill(transactions: pd.DataFrame, *, kind: Literal["customer", "terminal"],
             until: datetime | None = None) -> pd.DataFrame:
    """The history of what the stream serves: a row per counted event and per decay.

    For each key, in event-time order, a row at each event (its windows as of that instant) and a
    row at each instant a tile leaves a window before the key's next event or `until` (default:
    the newest event time), with the decayed values: exactly what the flow emits when it keeps up
    with the clock. So the latest row at or before t holds the windows as of t, which is what a
    point-in-time join needs. `event_timestamp` is bumped by 1 µs where a key's instants tie, so it
    is strictly increasing per key. Columns and dtypes follow `stream_sources.SCHEMAS`.
    """
    spec, file_name = _KINDS[kind]
    entity = f"{kind}_id"
    schema = SCHEMAS[file_name]
    tx = transactions.sort_values("event_timestamp", kind="stable")
    times = pd.DatetimeIndex(pd.to_datetime(tx["event_timestamp"], utc=True)).to_pydatetime()
    if until is None:
        until = max(times) if len(times) else datetime.now(UTC)
    events: dict[int, list[TxEvent]] = {}
    for tid, at, key, amount in zip(tx["transaction_id"].astype(str).tolist(), times.tolist(),
                                    tx[entity].astype("int64").tolist(),
                                    tx["amount"].astype("float64").tolist(), strict=True):
        events.setdefault(key, []).append(
            TxEvent(transaction_id=tid, customer_id=key, terminal_id=key, amount=amount,
                    event_time=at))
    keys: list[int] = []
    stamps: list[datetime] = []
    columns: dict[str, list] = {name: [] for name in spec.features}
    step = timedelta(microseconds=1)

    def emit(key: int, values: Values, at: datetime) -> None:
        stamp = at if not stamps or keys[-1] != key or at > stamps[-1] else stamps[-1] + step
        keys.append(key)
        stamps.append(stamp)
        for name, value in values.items():
            columns[name].append(value)

    for key, key_events in events.items():
        state = WindowState(spec)
        for event in key_events:
            for values, at in decays(state, event.event_time):
                emit(key, values, at)
            counted = on_event(state, event, event.event_time)
            if counted is not None:
                emit(key, *counted)
        for values, at in decays(state, until):
            emit(key, values, at)
    data = {entity: keys, "event_timestamp": stamps, **columns}
    arrays = [pa.array(data[f.name], type=f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema).to_pandas()


def write_backfill(transactions_path: Path, out_dir: Path, *, until: datetime | None = None
                   ) -> dict[str, Path]:
    """Backfill both views from a transactions parquet; returns {file stem: path}.

    Decay rows run up to `until` (default: now, or the newest event if later), so the online
    store loaded from these files holds the windows as of the load. The two views are
    independent pure loops: one process each (the customer view, ~3 rows an event, dominates).
    """
    newest = pd.read_parquet(transactions_path, columns=["event_timestamp"])[
        "event_timestamp"].max()
    if until is None:
        until = datetime.now(UTC) if pd.isna(newest) else max(
            datetime.now(UTC), pd.Timestamp(newest).tz_convert(UTC).to_pydatetime())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(max_workers=len(_KINDS),
                             mp_context=multiprocessing.get_context("spawn")) as pool:
        jobs = [pool.submit(_write_one, transactions_path, out_dir, kind, until)
                for kind in _KINDS]
        return dict(job.result() for job in jobs)


def _write_one(transactions_path: Path, out_dir: Path, kind: str, until: datetime
               ) -> tuple[str, Path]:
    tx = pd.read_parquet(transactions_path, columns=["transaction_id", "event_timestamp",
                                                     "customer_id", "terminal_id", "amount"])
    file_name = _KINDS[kind][1]
    frame = backfill(tx, kind=kind, until=until)  # type: ignore[arg-type]
    table = pa.Table.from_pandas(frame, schema=SCHEMAS[file_name], preserve_index=False)
    path = Path(out_dir) / file_name
    pq.write_table(table, path)
    return file_name.removesuffix(".parquet"), path
