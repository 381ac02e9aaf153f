"""A seeded, vectorized e-commerce simulator: catalogue, users, sessions, stock.

Calibrated to the statistics OTTO published for its session dataset: events per session with a
median of about 6 and a 95th percentile of about 68 (capped at 500), and click : cart : order
about 38 : 3.3 : 1. The model, written from those statistics (no code shared with anyone's):

* Items belong to categories; popularity is Zipf over a random ranking (`item_skew`). Each item
  has `NEIGHBOURS` latent co-visit neighbours, mostly in its own category, some in a complement
  category: the graph the co-visitation features have to recover from the events.
* Users belong to taste clusters (a sparse Dirichlet over categories); their activity is Zipf
  (`user_skew`: the exponent that sets how often the same users come back, so the cache hit
  rate). Users of consumable categories have a few staples they buy again across sessions.
* A session has a lognormal length, a focus category, and walks: each next event re-visits an
  earlier item of the session, follows a co-visit edge from the previous item, or draws a new
  item (focus category, the user's taste, or a staple). Event times are exponential gaps.
* Stock: each item has a capacity sized against its expected demand and a restock period; an
  order beyond what is left becomes a cart (the user could not buy), and at each restock the
  shop refills what was sold (a `restock` event). So popular items run out between restocks.
* Drift (`drift_from_day`): new items launch that day and take `drift_share` of new draws.

One `np.random.default_rng(seed)` drives every draw: same seed and arguments, same frames.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

DAY_S = 86_400
NEIGHBOURS = 20
SESSION_MEDIAN = 6.0
SESSION_P95 = 68.0
SESSION_CAP = 500
# click, cart, order: OTTO 38 : 3.3 : 1 once unfilled orders (carts) and staples are counted
TYPE_SHARES = np.array([39.5, 2.95, 1.0]) / 43.45
P_REVISIT, P_COVISIT = 0.30, 0.35  # next event: re-visit, co-visit edge, else a new item
P_FOCUS, P_STAPLE = 0.6, 0.08  # a new item: from the session's focus category, a staple
GAP_MEAN_S = 40.0


@dataclass(frozen=True)
class Catalogue:
    """What `simulate` returns: the three frames and the latent truth tests can check against."""

    items: pd.DataFrame  # item_id, category, brand, price, capacity, restock_days, launch_day,
    #                      consumable, popularity
    users: pd.DataFrame  # user_id, cluster, activity
    events: pd.DataFrame  # pipelines.recs.events.COLUMNS, sorted by ts
    neighbours: np.ndarray  # [n_items, NEIGHBOURS] latent co-visit graph
    start: dt.datetime


def default_start(days: int) -> dt.datetime:
    """The first day so the data ends at today's 00:00 UTC."""
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - dt.timedelta(days=days)


def _zipf(rng: np.random.Generator, n: int, skew: float, offset: float) -> np.ndarray:
    """Normalised Zipf weights over a random permutation (rank r -> (r + offset)^-skew)."""
    w = (np.arange(n) + 1.0 + offset) ** -skew
    return (w / w.sum())[rng.permutation(n)]


def _grouped_sampler(group: np.ndarray, weight: np.ndarray, n_groups: int):  # type: ignore[no-untyped-def]
    """Draw an element of a given group, proportional to its weight, for many draws at once.

    Elements are sorted by group; the cumulative weight within group g runs over [g, g + 1), so
    one `searchsorted` of `g + u` picks an element of g for every draw.
    """
    order = np.argsort(group, kind="stable")
    g = group[order]
    w = weight[order]
    totals = np.bincount(g, weights=w, minlength=n_groups)
    within = np.cumsum(w) - np.concatenate([[0.0], np.cumsum(totals)])[g]
    cum = g + within / np.maximum(totals[g], 1e-300)
    empty = totals <= 0

    def draw(groups: np.ndarray, u: np.ndarray) -> np.ndarray:
        idx = np.searchsorted(cum, groups + np.minimum(u, 1 - 1e-12), side="right")
        out = order[np.minimum(idx, len(order) - 1)]
        if empty[groups].any():  # a group with no element: any element
            out = np.where(empty[groups], order[(u * len(order)).astype(np.int64)], out)
        return out

    return draw


def _cluster_categories(rng: np.random.Generator, taste: np.ndarray, clusters: np.ndarray,
                        ) -> np.ndarray:
    cum = np.cumsum(taste, axis=1)
    u = rng.random(len(clusters))
    return np.minimum((cum[clusters] < u[:, None]).sum(axis=1), taste.shape[1] - 1)


def simulate(settings: Any | None = None, *, seed: int = 0, n_users: int = 20_000,
             n_items: int = 10_000, days: int = 21, sessions_per_day: int = 2_750,
             n_categories: int = 40, n_clusters: int = 24, item_skew: float = 0.9,
             user_skew: float = 1.0, drift_from_day: int | None = None,
             drift_share: float = 0.2, start: dt.datetime | None = None,
             write: bool = True) -> Catalogue:
    """Simulate a shop; with `write`, save `data/recs/{items,users,events}.parquet`.

    `settings` (an `rtml.settings.Settings`) gives the repo root to write under; None: this
    checkout. The defaults give about 1 M events.
    """
    rng = np.random.default_rng(seed)
    start = start or default_start(days)
    # -- catalogue ------------------------------------------------------------------------
    category = rng.integers(0, n_categories, n_items)
    popularity = _zipf(rng, n_items, item_skew, offset=5.0)
    consumable_cat = rng.random(n_categories) < 0.2
    launch_day = np.zeros(n_items, dtype=np.int64)
    new_items = np.zeros(n_items, dtype=bool)
    if drift_from_day is not None:
        new_items = rng.random(n_items) < 0.05
        launch_day[new_items] = drift_from_day
    by_category = _grouped_sampler(category, np.where(new_items, 0.0, popularity), n_categories)
    same = rng.random((n_items, NEIGHBOURS)) < 0.75
    other = (category[:, None] + 1 + (rng.random((n_items, NEIGHBOURS)) < 0.5)) % n_categories
    neighbours = by_category(np.where(same, category[:, None], other).ravel(),
                             rng.random(n_items * NEIGHBOURS)).reshape(n_items, NEIGHBOURS)
    # -- users ----------------------------------------------------------------------------
    taste = rng.dirichlet(np.full(n_categories, 0.15), size=n_clusters)
    cluster = rng.integers(0, n_clusters, n_users)
    activity = _zipf(rng, n_users, user_skew, offset=10.0)
    staple_pool = np.where(consumable_cat[category] & ~new_items, popularity, 0.0)
    staples = rng.choice(n_items, size=(n_users, 3), p=staple_pool / staple_pool.sum())
    # -- sessions -------------------------------------------------------------------------
    n_sessions = int(sessions_per_day * days)
    sigma = np.log(SESSION_P95 / (SESSION_MEDIAN - 0.1)) / 1.6449
    lengths = np.minimum(np.ceil(rng.lognormal(np.log(SESSION_MEDIAN - 0.1), sigma,
                                               n_sessions)), SESSION_CAP).astype(np.int64)
    s_user = rng.choice(n_users, size=n_sessions, p=activity)
    s_start = np.sort(rng.random(n_sessions)) * (days * DAY_S - 3600)
    s_focus = _cluster_categories(rng, taste, cluster[s_user])
    n = int(lengths.sum())
    sess = np.repeat(np.arange(n_sessions), lengths)
    first = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    pos = np.arange(n) - first[sess]
    ts = s_start[sess] + _session_offsets(rng.exponential(GAP_MEAN_S, n), first, lengths)
    day = np.minimum((ts // DAY_S).astype(np.int64), days - 1)
    # what each event does: 0 new item, 1 re-visit, 2 co-visit edge from the previous event
    u = rng.random(n)
    action = np.where(pos == 0, 0, np.where(u < P_REVISIT, 1, np.where(
        u < P_REVISIT + P_COVISIT, 2, 0)))
    item = np.full(n, -1, dtype=np.int64)
    new = action == 0
    item[new] = _new_items(rng, new_count=int(new.sum()), user=s_user[sess[new]],
                           focus=s_focus[sess[new]], day=day[new], cluster=cluster,
                           taste=taste, staples=staples, by_category=by_category,
                           new_items=new_items, popularity=popularity,
                           drift_from_day=drift_from_day, drift_share=drift_share)
    ref = np.where(action == 1, first[sess] + (rng.random(n) * np.maximum(pos, 1)).astype(
        np.int64), np.arange(n) - 1)
    k = np.minimum(rng.geometric(0.2, n) - 1, NEIGHBOURS - 1)
    todo = np.flatnonzero(~new)
    while len(todo):  # resolve chains of references, each pass the ones whose target is known
        known = item[ref[todo]] >= 0
        t = todo[known]
        src = item[ref[t]]
        item[t] = np.where(action[t] == 1, src, neighbours[src, k[t]])
        todo = todo[~known]
    staple = (staples[s_user[sess]] == item[:, None]).any(axis=1)
    shares = np.where(staple[:, None], TYPE_SHARES * [0.7, 2.5, 4.0], TYPE_SHARES)
    shares /= shares.sum(axis=1, keepdims=True)
    kind = (np.cumsum(shares, axis=1) < rng.random(n)[:, None]).sum(axis=1)
    quantity = np.where((kind == 2) & consumable_cat[category[item]],
                        rng.integers(1, 4, n), 1)
    ev = pd.DataFrame({"user_id": s_user[sess] + 1, "item_id": item, "session_id": sess + 1,
                       "kind": kind, "t": ts, "quantity": quantity})
    ev = ev[ev["t"] < days * DAY_S]  # a session running past the last midnight is cut there
    ev = ev.sort_values("t", kind="stable").reset_index(drop=True)
    items, restock = _stock(rng, ev, category=category, popularity=popularity, days=days,
                            consumable=consumable_cat[category], launch_day=launch_day)
    ev = pd.concat([ev, restock], ignore_index=True).sort_values("t", kind="stable")
    events = pd.DataFrame({
        "event_id": "e" + pd.Series(np.arange(len(ev)), dtype="int64").astype(str),
        "user_id": ev["user_id"].to_numpy(np.int64),
        "item_id": ev["item_id"].to_numpy(np.int64),
        "session_id": ev["session_id"].to_numpy(np.int64),
        "type": pd.Categorical.from_codes(ev["kind"].to_numpy(), categories=list(
            ("click", "cart", "order", "restock"))).astype(str),
        "ts": pd.Timestamp(start) + pd.to_timedelta(np.round(ev["t"].to_numpy() * 1e3), "ms"),
        "quantity": ev["quantity"].to_numpy(np.int64),
    })
    items["category"] = category
    users = pd.DataFrame({"user_id": np.arange(n_users) + 1, "cluster": cluster,
                          "activity": activity})
    cat = Catalogue(items=items, users=users, events=events.reset_index(drop=True),
                    neighbours=neighbours, start=pd.Timestamp(start).to_pydatetime())
    if write:
        write_frames(cat, _root(settings) / "data" / "recs")
    return cat


def _session_offsets(gaps: np.ndarray, first: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Seconds since the session's start: cumulative gaps, 0 for the first event."""
    cum = np.cumsum(gaps)
    return cum - np.repeat(cum[first], lengths)


def _new_items(rng: np.random.Generator, *, new_count: int, user: np.ndarray, focus: np.ndarray,
               day: np.ndarray, cluster: np.ndarray, taste: np.ndarray, staples: np.ndarray,
               by_category: Any, new_items: np.ndarray, popularity: np.ndarray,
               drift_from_day: int | None, drift_share: float) -> np.ndarray:
    u = rng.random(new_count)
    cat = np.where(u < P_FOCUS, focus, _cluster_categories(rng, taste, cluster[user]))
    out = by_category(cat, rng.random(new_count))
    staple = rng.random(new_count) < P_STAPLE
    out[staple] = staples[user[staple], rng.integers(0, staples.shape[1], int(staple.sum()))]
    if drift_from_day is not None and new_items.any():
        launched = (day >= drift_from_day) & (rng.random(new_count) < drift_share)
        w = np.where(new_items, popularity, 0.0)
        out[launched] = rng.choice(len(w), size=int(launched.sum()), p=w / w.sum())
    return out


def _stock(rng: np.random.Generator, ev: pd.DataFrame, *, category: np.ndarray,
           popularity: np.ndarray, days: int, consumable: np.ndarray,
           launch_day: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Capacities and restock periods; orders beyond stock become carts; restock events.

    The level is reset to capacity at each restock, so within a period an order is filled while
    the period's ordered units (cumulative) stay within capacity; the restock refills exactly
    what the previous period sold.
    """
    n_items = len(category)
    restock_days = rng.integers(3, 11, n_items)
    orders = ev["kind"].to_numpy() == 2
    demand = np.bincount(ev["item_id"].to_numpy()[orders], minlength=n_items)
    per_period = demand * restock_days / days
    capacity = np.maximum(1, np.round(per_period * rng.uniform(0.4, 2.5, n_items)
                                      + rng.integers(0, 4, n_items))).astype(np.int64)
    item = ev["item_id"].to_numpy()
    period = (ev["t"].to_numpy() // DAY_S).astype(np.int64) // restock_days[item]
    o = np.flatnonzero(orders)
    key = item[o] * 1_000_000 + period[o]
    frame = pd.DataFrame({"key": key, "q": ev["quantity"].to_numpy()[o]})
    used = frame.groupby("key", sort=False)["q"].cumsum().to_numpy()
    filled = used <= capacity[item[o]]
    kind = ev["kind"].to_numpy().copy()
    kind[o[~filled]] = 1
    ev["kind"] = kind
    qty = ev["quantity"].to_numpy().copy()
    qty[o[~filled]] = 1
    ev["quantity"] = qty
    sold = pd.DataFrame({"item": item[o[filled]], "period": period[o[filled]],
                         "q": qty[o[filled]]})
    sold = sold.groupby(["item", "period"], as_index=False)["q"].sum()
    t = ((sold["period"] + 1) * restock_days[sold["item"]] * DAY_S).astype(np.float64)
    keep = t < days * DAY_S
    restock = pd.DataFrame({"user_id": -1, "item_id": sold["item"][keep].to_numpy(),
                            "session_id": -1, "kind": 3, "t": t[keep].to_numpy(),
                            "quantity": sold["q"][keep].to_numpy()})
    items = pd.DataFrame({"item_id": np.arange(n_items),
                          "brand": rng.integers(0, 500, n_items),
                          "price": np.round(np.exp(rng.normal(3.3, 0.9, n_items)), 2),
                          "capacity": capacity, "restock_days": restock_days,
                          "launch_day": launch_day, "consumable": consumable,
                          "popularity": popularity})
    return items, restock


def _root(settings: Any | None) -> Path:
    if settings is not None:
        return Path(settings.repo_root)
    return Path(__file__).resolve().parents[2]


def write_frames(cat: Catalogue, folder: Path) -> dict[str, Path]:
    """`items.parquet`, `users.parquet`, `events.parquet` under `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / f"{name}.parquet" for name in ("items", "users", "events")}
    cat.items.to_parquet(paths["items"], index=False)
    cat.users.to_parquet(paths["users"], index=False)
    cat.events.to_parquet(paths["events"], index=False)
    np.save(folder / "neighbours.npy", cat.neighbours)
    return paths


def load(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The written frames: items, users, events."""
    return (pd.read_parquet(folder / "items.parquet"), pd.read_parquet(folder / "users.parquet"),
            pd.read_parquet(folder / "events.parquet"))
