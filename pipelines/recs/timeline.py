"""Per-item quantities as of any instant, for many (item, instant) pairs at once.

Offline evaluation and the point-in-time training set ask "what was item i's stock / how often
was it clicked in the last hour, at time t" for millions of pairs. A running sum per item,
sorted by (item, time), answers each with one `searchsorted`: the key is
`item * SPAN + seconds`, so an item's events form one sorted block and a query lands inside it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SPAN = 1e9  # seconds: larger than any data set's time span (31 years)


def seconds(ts: pd.Series | pd.DatetimeIndex | np.ndarray, base: pd.Timestamp) -> np.ndarray:
    """Seconds since `base` (float64, ms precision)."""
    values = pd.DatetimeIndex(ts) if not isinstance(ts, pd.DatetimeIndex) else ts
    return (values - base).total_seconds().to_numpy(np.float64)


def instant(base: pd.Timestamp, t: float) -> pd.Timestamp:
    """The timestamp `t` seconds after `base`, to the microsecond (undoes `seconds`' floats)."""
    return base + pd.Timedelta(microseconds=round(t * 1e6))


class ItemTimeline:
    """Cumulative per-item deltas: `total(items, t)` = initial + sum of deltas at times <= t."""

    def __init__(self, item: np.ndarray, t: np.ndarray, delta: np.ndarray, *,
                 initial: np.ndarray | None = None) -> None:
        order = np.lexsort((t, item))
        self.key = item[order].astype(np.float64) * SPAN + t[order]
        self.cum = np.concatenate([[0.0], np.cumsum(delta[order].astype(np.float64))])
        self.item_sorted = item[order]
        self.initial = initial

    def total(self, items: np.ndarray, t: np.ndarray | float) -> np.ndarray:
        """Initial value plus the deltas of `items` at times <= `t` (per pair)."""
        items = np.asarray(items, dtype=np.int64)
        hi = np.searchsorted(self.key, items * SPAN + np.asarray(t, dtype=np.float64),
                             side="right")
        lo = np.searchsorted(self.key, items * SPAN - 0.5, side="left")
        out = self.cum[hi] - self.cum[lo]
        if self.initial is not None:
            out = out + self.initial[items]
        return out


def stock_timeline(items: pd.DataFrame, events: pd.DataFrame, base: pd.Timestamp,
                   ) -> ItemTimeline:
    """Stock level: capacity at the start, minus orders, plus restocks (pipelines.recs.simulate)."""
    moves = events[events["type"].isin(["order", "restock"])]
    sign = np.where(moves["type"].to_numpy() == "order", -1.0, 1.0)
    initial = np.zeros(int(items["item_id"].max()) + 1)
    initial[items["item_id"].to_numpy()] = items["capacity"].to_numpy()
    return ItemTimeline(moves["item_id"].to_numpy(np.int64), seconds(moves["ts"], base),
                        sign * moves["quantity"].to_numpy(np.float64), initial=initial)


def activity_timeline(events: pd.DataFrame, base: pd.Timestamp) -> ItemTimeline:
    """User events (click, cart, order) per item: a window count is a difference of totals."""
    acts = events[events["type"] != "restock"]
    return ItemTimeline(acts["item_id"].to_numpy(np.int64), seconds(acts["ts"], base),
                        np.ones(len(acts)))
