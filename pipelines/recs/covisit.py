"""Nightly co-visitation neighbours, weighted by event type and recency (as OTTO's solutions do).

Two items are co-visited when they occur within `LAGS` events of each other in one session. Each
pair (a -> b, both directions) gets the weight of b's event type (click 1, cart 6, order 3: what
the user did with the neighbour is what counts) times a recency decay halving every
`HALF_LIFE_DAYS` before the snapshot; pairs older than `WINDOW_DAYS` are forgotten. The
snapshot stamped D keeps each item's `COVISIT_TOP` heaviest neighbours among pairs before D.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from feature_repo.recs.specs import COVISIT_TOP

LAGS = 3
WINDOW_DAYS = 14
HALF_LIFE_DAYS = 7.0


def pairs(ev: pd.DataFrame) -> pd.DataFrame:
    """Directed pairs (a, b, type weight of b, ns time of the later event) of nearby events.

    `ev`: user events with `session_id`, `item_id`, `ts`, `weight` (`batch_features.user_events`).
    """
    t_all = pd.DatetimeIndex(ev["ts"]).asi8  # ns since the epoch (UTC)
    order = np.lexsort((t_all, ev["session_id"].to_numpy()))
    sess = ev["session_id"].to_numpy()[order]
    item = ev["item_id"].to_numpy()[order]
    weight = ev["weight"].to_numpy()[order]
    t = t_all[order]
    parts = []
    for lag in range(1, LAGS + 1):
        same = (sess[lag:] == sess[:-lag]) & (item[lag:] != item[:-lag])
        a, b = item[:-lag][same], item[lag:][same]
        wa, wb = weight[:-lag][same], weight[lag:][same]
        later = t[lag:][same]
        parts.append(pd.DataFrame({"a": a, "b": b, "w": wb, "ts": later}))
        parts.append(pd.DataFrame({"a": b, "b": a, "w": wa, "ts": later}))
    return pd.concat(parts, ignore_index=True)


def snapshot(pair_frame: pd.DataFrame, day: pd.Timestamp, top: int = COVISIT_TOP,
             ) -> pd.DataFrame:
    """Each item's `top` neighbours as of `day` (pairs before it): `item_id`, lists of ids, weights.

    Ties in weight go to the smaller neighbour id, so the lists are deterministic.
    """
    ts = pair_frame["ts"].to_numpy()
    end = day.value
    p = pair_frame[(ts < end) & (ts >= end - WINDOW_DAYS * 86_400 * 10**9)]
    if p.empty:
        return pd.DataFrame({"item_id": pd.Series(dtype="int64"),
                             "covisit_items": pd.Series(dtype=object),
                             "covisit_weights": pd.Series(dtype=object)})
    age_days = (end - p["ts"].to_numpy()) / (86_400.0 * 1e9)
    w = p["w"].to_numpy() * 0.5 ** (age_days / HALF_LIFE_DAYS)
    key = p["a"].to_numpy(np.int64) << 32 | p["b"].to_numpy(np.int64)
    summed = pd.Series(w).groupby(key, sort=False).sum()
    k = summed.index.to_numpy(np.int64)
    a, b, w = k >> 32, k & 0xFFFFFFFF, summed.to_numpy()
    order = np.lexsort((b, -w, a))
    a, b, w = a[order], b[order], w[order]
    starts = np.concatenate([[0], np.flatnonzero(a[1:] != a[:-1]) + 1])
    rank = np.arange(len(a)) - np.repeat(starts, np.diff(np.append(starts, len(a))))
    keep = rank < top
    agg = pd.DataFrame({"a": a[keep], "b": b[keep], "w": w[keep]})
    keys, items = grouped_lists(agg["a"].to_numpy(), agg["b"].to_numpy())
    _, weights = grouped_lists(agg["a"].to_numpy(), agg["w"].to_numpy())
    return pd.DataFrame({"item_id": keys.astype(np.int64), "covisit_items": items,
                         "covisit_weights": weights})


def grouped_lists(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, list[list]]:
    """Consecutive runs of equal `keys` (already grouped) -> (run keys, the runs' values as lists).

    pandas' `groupby(...).agg(list)` makes a Series per group (~80 µs each): this splits once.
    """
    if len(keys) == 0:
        return keys, []
    starts = np.concatenate([[0], np.flatnonzero(keys[1:] != keys[:-1]) + 1])
    return keys[starts], [part.tolist() for part in np.split(values, starts[1:])]
