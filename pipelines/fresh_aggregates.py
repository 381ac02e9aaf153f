"""Sliding-window aggregates that are fresh on every event, shared by the stream and the backfill.

No engine here: the Bytewax flow (`pipelines/fraud_fresh_flow.py`) and the offline backfill call the
same `WindowState`, so a feature trains on exactly what it serves.

Window semantics. Event time is cut into tiles of `TILE_SECONDS`; "the last W" as of time t is every
event whose tile lies in the W/TILE_SECONDS tiles ending with t's tile (the current, partial tile
included). A window is therefore exact to a tile: an event leaves the 10-minute window between
600 and 610 seconds after it happened. State per key is the tiles that hold events (sparse: a
customer's hour is a handful), bounded by the largest window.

Lateness. An event up to `allowed_lateness` behind the key's newest event time (the watermark) is
counted in its own tile; an older one is not used and counted in `late_dropped`. A transaction id
seen before (a replay after a crash) is ignored, so rewinds never double-count.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.stream_sources import SCHEMAS
from rtml.events import TxEvent

TILE_SECONDS = 10
Kind = Literal["count", "sum", "mean"]


@dataclass(frozen=True)
class WindowSpec:
    """Windows (label -> seconds) and the features computed over them (name -> kind, window)."""

    windows: dict[str, int]
    features: dict[str, tuple[Kind, str]]

    @property
    def horizon_tiles(self) -> int:
        """Tiles the largest window spans."""
        return max(self.windows.values()) // TILE_SECONDS


CUSTOMER = WindowSpec(
    windows={"10m": 600, "1h": 3600},
    features={
        name: (kind, w)
        for w in ("10m", "1h")
        for name, kind in ((f"cust_tx_count_{w}", "count"), (f"cust_amount_sum_{w}", "sum"),
                           (f"cust_mean_amount_{w}", "mean"))
    },
)
TERMINAL = WindowSpec(windows={"1h": 3600}, features={"term_tx_count_1h": ("count", "1h")})


def _tile(t: datetime) -> int:
    return int(t.timestamp() // TILE_SECONDS)


@dataclass
class WindowState:
    """One key's tiles: tile -> [count, amount sum, transaction ids]; picklable."""

    spec: WindowSpec
    allowed_lateness: timedelta = timedelta(seconds=60)
    tiles: dict[int, list] = field(default_factory=dict)
    keys: list[int] = field(default_factory=list)  # sorted tile ids present in `tiles`
    seen: set[str] = field(default_factory=set)
    watermark: datetime | None = None
    clock: datetime | None = None  # latest of the watermark and the last timer: timers look ahead
    late_dropped: int = 0

    def add(self, event_time: datetime, amount: float, transaction_id: str) -> bool:
        """Count one event; False when it is a duplicate or too late to count."""
        if transaction_id in self.seen:
            return False
        if self.watermark is not None and event_time < self.watermark - self.allowed_lateness:
            self.late_dropped += 1
            return False
        tile = _tile(event_time)
        slot = self.tiles.get(tile)
        if slot is None:
            slot = self.tiles[tile] = [0, 0.0, []]
            bisect.insort(self.keys, tile)
        slot[0] += 1
        slot[1] += amount
        slot[2].append(transaction_id)
        self.seen.add(transaction_id)
        if self.watermark is None or event_time > self.watermark:
            self.watermark = event_time
            self.clock = max(self.clock or event_time, event_time)
            self._evict(_tile(event_time) - self.spec.horizon_tiles + 1)
        return True

    def _evict(self, first_kept: int) -> None:
        cut = bisect.bisect_left(self.keys, first_kept)
        for tile in self.keys[:cut]:
            self.seen.difference_update(self.tiles.pop(tile)[2])
        del self.keys[:cut]

    def values(self, at: datetime) -> dict[str, float | int]:
        """The features as of time `at` (the watermark for an event, the clock for a timer)."""
        current = _tile(at)
        hi = bisect.bisect_right(self.keys, current)
        totals: dict[str, tuple[int, float]] = {}
        for label, seconds in self.spec.windows.items():
            lo = bisect.bisect_left(self.keys, current - seconds // TILE_SECONDS + 1)
            count, amount = 0, 0.0
            for tile in self.keys[lo:hi]:
                count += self.tiles[tile][0]
                amount += self.tiles[tile][1]
            totals[label] = (count, amount)
        out: dict[str, float | int] = {}
        for name, (kind, label) in self.spec.features.items():
            count, amount = totals[label]
            if kind == "count":
                out[name] = count
            elif kind == "sum":
                out[name] = round(amount, 6)
            else:
                out[name] = round(amount / count, 6) if count else 0.0
        return out

    def next_expiry(self) -> datetime | None:
        """When the next event leaves a window (a timer then re-emits decayed values)."""
        if not self.keys or self.clock is None:
            return None
        current = _tile(self.clock)
        due = []
        for seconds in self.spec.windows.values():
            n = seconds // TILE_SECONDS
            i = bisect.bisect_left(self.keys, current - n + 1)
            if i < len(self.keys):
                due.append((self.keys[i] + n) * TILE_SECONDS)
        return datetime.fromtimestamp(min(due), tz=UTC) if due else None

    def expire(self, now: datetime) -> None:
        """Drop tiles that are out of every window as of `now`; later timers look past `now`."""
        self.clock = max(self.clock or now, now)
        self._evict(_tile(now) - self.spec.horizon_tiles + 1)

    def is_empty(self) -> bool:
        """No events left in any window."""
        return not self.keys


def customer_state(**kw: timedelta) -> WindowState:
    """A customer's 10-minute and 1-hour count, sum and mean."""
    return WindowState(spec=CUSTOMER, **kw)


def terminal_state(**kw: timedelta) -> WindowState:
    """A terminal's 1-hour count."""
    return WindowState(spec=TERMINAL, **kw)


def on_event(state: WindowState, event: TxEvent) -> dict[str, float | int] | None:
    """The key's new values after `event`, or None when it was not counted."""
    if not state.add(event.event_time, event.amount, event.transaction_id):
        return None
    assert state.watermark is not None
    return state.values(state.watermark)


def on_timer(state: WindowState, now: datetime) -> dict[str, float | int]:
    """Values as of `now` after old tiles have left; the state forgets what no window holds."""
    values = state.values(now)
    state.expire(now)
    return values


def backfill(transactions: pd.DataFrame, *, kind: Literal["customer", "terminal"]
             ) -> pd.DataFrame:
    """One row per event: the values the stream emits for it, with strictly increasing times."""
    entity = f"{kind}_id"
    make = customer_state if kind == "customer" else terminal_state
    spec = CUSTOMER if kind == "customer" else TERMINAL
    tx = transactions.sort_values("event_timestamp", kind="stable")
    states: dict[int, WindowState] = {}
    last: dict[int, datetime] = {}
    rows: list[dict] = []
    for tid, ts, key, amount in zip(tx["transaction_id"].astype(str), tx["event_timestamp"],
                                    tx[entity].astype("int64"), tx["amount"], strict=True):
        at = ts.to_pydatetime()
        state = states.get(key)
        if state is None:
            state = states[key] = make()
        if not state.add(at, float(amount), tid):
            continue
        stamp = at if key not in last or at > last[key] else last[key] + timedelta(microseconds=1)
        last[key] = stamp
        rows.append({entity: key, "event_timestamp": stamp, **state.values(state.watermark)})
    cols = [entity, "event_timestamp", *spec.features]
    out = pd.DataFrame(rows, columns=cols)
    out["event_timestamp"] = pd.to_datetime(out["event_timestamp"], utc=True)
    return out


def write_backfill(transactions_path: Path, out_dir: Path) -> dict[str, Path]:
    """`customer_fresh.parquet` and `terminal_fresh.parquet`: the offline twins for training."""
    tx = pd.read_parquet(transactions_path,
                         columns=["transaction_id", "event_timestamp", "customer_id",
                                  "terminal_id", "amount"])
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for kind in ("customer", "terminal"):
        name = f"{kind}_fresh.parquet"
        schema = SCHEMAS[name]
        frame = backfill(tx, kind=kind)[schema.names]
        pq.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False),
                       out_dir / name)
        paths[f"{kind}_fresh"] = out_dir / name
    return paths
