"""The fraud scenario's fresh windows: its specs and its adapters onto the kit's window engine.

The engine (`rtml.features.windows`) knows events only as (id, time, values); this module feeds it
transactions: a customer's count, amount sum and mean over 10 minutes and 1 hour, a terminal's
count over 1 hour (the specs live in `feature_repo/fraud/specs.py`, with the views they fill).
The Bytewax flow (`pipelines/fraud/flow.py`) and the offline `backfill` call the same state, so a
feature trains on exactly what it serves; the engine's docstring has the window, lateness,
duplicate and decay semantics.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from feature_repo.fraud.specs import (
    CUSTOMER_FRESH,
    CUSTOMER_WINDOWS,
    TERMINAL_FRESH,
    TERMINAL_WINDOWS,
)
from pipelines.fraud.events import TxEvent
from pipelines.fraud.offline_sources import SCHEMAS
from rtml.features import windows as kit
from rtml.features.backfill import history
from rtml.features.windows import (
    TILE_SECONDS,
    Frozen,
    Values,
    WindowSpec,
    decays,
    on_timer,
    tile_of,
    tile_start,
)

__all__ = ["CUSTOMER", "TERMINAL", "TILE_SECONDS", "Frozen", "Values", "WindowSpec",
           "WindowState", "backfill", "customer_state", "decays", "on_event", "on_timer",
           "terminal_state", "tile_of", "tile_start", "write_backfill"]

CUSTOMER = CUSTOMER_WINDOWS
TERMINAL = TERMINAL_WINDOWS


class WindowState(kit.WindowState):
    """The kit's window state, with the one-amount `add` transactions use."""

    def add(self, event_time: datetime, amount: float, transaction_id: str) -> bool:
        """Count one transaction; False (and a counter bumped) for a duplicate or a late one."""
        return self.add_event(transaction_id, event_time, {"amount": amount})


def customer_state(**kw: timedelta | float) -> WindowState:
    """A customer's count, amount sum and mean over 10 minutes and 1 hour."""
    return WindowState(CUSTOMER, **kw)  # type: ignore[arg-type]


def terminal_state(**kw: timedelta | float) -> WindowState:
    """A terminal's transaction count over 1 hour."""
    return WindowState(TERMINAL, **kw)  # type: ignore[arg-type]


def on_event(state: kit.WindowState, event: TxEvent, now: datetime
             ) -> tuple[Values, datetime] | None:
    """`(values, at)` after counting `event` at wall time `now`; None when it was not counted.

    `at` is the later of `now` and the key's watermark: a backlogged event (far behind the wall
    clock) changes the windows as of now, not as of its own time.
    """
    return kit.on_event(state, event.transaction_id, event.event_time, {"amount": event.amount},
                        now)


# kind -> (window spec, the view it fills: join key and offline file)
_KINDS = {"customer": (CUSTOMER, CUSTOMER_FRESH), "terminal": (TERMINAL, TERMINAL_FRESH)}


def backfill(transactions: pd.DataFrame, *, kind: Literal["customer", "terminal"],
             until: datetime | None = None) -> pd.DataFrame:
    """The history of what the stream serves: a row per counted event and per decay.

    For each key, in event-time order, a row at each event (its windows as of that instant) and a
    row at each instant a tile leaves a window before the key's next event or `until` (default:
    the newest event time), with the decayed values: exactly what the flow emits when it keeps up
    with the clock. So the latest row at or before t holds the windows as of t, which is what a
    point-in-time join needs. `event_timestamp` is bumped by 1 µs where a key's instants tie, so it
    is strictly increasing per key. Columns and dtypes follow `offline_sources.SCHEMAS`.
    """
    spec, view = _KINDS[kind]
    entity = view.join_key
    schema = SCHEMAS[view.offline_file]  # type: ignore[index]
    tx = transactions.sort_values("event_timestamp", kind="stable")
    times = pd.DatetimeIndex(pd.to_datetime(tx["event_timestamp"], utc=True)).to_pydatetime()
    if until is None:
        until = max(times) if len(times) else datetime.now(UTC)
    events = ((key, (tid, at, {"amount": amount}))
              for tid, at, key, amount in zip(tx["transaction_id"].astype(str).tolist(),
                                              times.tolist(), tx[entity].astype("int64").tolist(),
                                              tx["amount"].astype("float64").tolist(), strict=True))
    keys, stamps, columns = history(spec, events, until=until)
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
    file_name = str(_KINDS[kind][1].offline_file)
    frame = backfill(tx, kind=kind, until=until)  # type: ignore[arg-type]
    table = pa.Table.from_pandas(frame, schema=SCHEMAS[file_name], preserve_index=False)
    path = Path(out_dir) / file_name
    pq.write_table(table, path)
    return file_name.removesuffix(".parquet"), path
