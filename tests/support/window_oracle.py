"""An independent recomputation of the fresh windows, for tests: plain pandas over raw events.

Deliberately shares no code with `pipelines/` (no `WindowState`, no `backfill`): it restates the
contract from the README and writes its own windowing. What is online at wall time t, per key:
the count / sum / mean of `amount` over the events the flow has seen whose 10-second tile k
satisfies ``tile(t) - W/10 < k <= tile(t)``, where an event is not counted if its transaction id
arrived before (a duplicate), or if it is more than `lateness` behind the newest event time that
had arrived for its key before it (too late). Events are given in arrival order.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

TILE_NS = 10 * 1_000_000_000
CUSTOMER_WINDOWS = {"10m": 600, "1h": 3600}
TERMINAL_WINDOWS = {"1h": 3600}


def _tile(times: pd.Series) -> np.ndarray:
    return pd.to_datetime(times, utc=True).astype("int64").to_numpy() // TILE_NS


def counted_events(arrivals: pd.DataFrame, key: str, *, lateness_s: float = 3600
                   ) -> pd.DataFrame:
    """The events a key's windows hold, whenever they are evaluated: no duplicates, none too late.

    `arrivals`: `transaction_id`, `event_timestamp`, `amount` and `key`, in arrival order.
    """
    df = arrivals.drop_duplicates("transaction_id", keep="first").copy()
    df["event_timestamp"] = pd.to_datetime(df["event_timestamp"], utc=True)
    # The newest event time that arrived for the key before this event (NaT for its first).
    newest_before = df.groupby(key)["event_timestamp"].transform(lambda s: s.cummax().shift())
    too_late = df["event_timestamp"] < newest_before - pd.Timedelta(seconds=lateness_s)
    return df[~too_late.fillna(False)]


def windows_at(arrivals: pd.DataFrame, at: datetime, *, key: str, windows: dict[str, int],
               prefix: str, keys: list[int], lateness_s: float = 3600,
               sums: bool = True) -> pd.DataFrame:
    """`{prefix}_tx_count_{w}` (and amount sum / mean) per key as of `at`, indexed by `keys`."""
    df = counted_events(arrivals, key, lateness_s=lateness_s)
    tiles = _tile(df["event_timestamp"])
    now = pd.Timestamp(at).value // TILE_NS
    out = pd.DataFrame(index=pd.Index(keys, name=key))
    for label, seconds in windows.items():
        inside = df[(tiles > now - seconds // 10) & (tiles <= now)]
        grouped = inside.groupby(key)["amount"]
        count = grouped.count().reindex(keys, fill_value=0).astype("int64")
        out[f"{prefix}_tx_count_{label}"] = count
        if sums:
            total = grouped.sum().reindex(keys, fill_value=0.0)
            out[f"{prefix}_amount_sum_{label}"] = total
            out[f"{prefix}_mean_amount_{label}"] = (total / count.where(count > 0)).fillna(0.0)
    return out


def customer_windows(arrivals: pd.DataFrame, at: datetime, keys: list[int],
                     lateness_s: float = 3600) -> pd.DataFrame:
    """The `customer_fresh` view as of `at`."""
    return windows_at(arrivals, at, key="customer_id", windows=CUSTOMER_WINDOWS, prefix="cust",
                      keys=keys, lateness_s=lateness_s)


def terminal_windows(arrivals: pd.DataFrame, at: datetime, keys: list[int],
                     lateness_s: float = 3600) -> pd.DataFrame:
    """The `terminal_fresh` view as of `at`."""
    return windows_at(arrivals, at, key="terminal_id", windows=TERMINAL_WINDOWS, prefix="term",
                      keys=keys, lateness_s=lateness_s, sums=False)
